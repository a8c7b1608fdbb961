"""``wiring simulate``: fill (or resume) a simulation store of training data for NPE.

``wiring simulate --anatomy PATH_OR_PRESET --rule NAME --measurements NAME_OR_PATH|model --n N
--seed S --out STORE [--select ID,...] [--n-pairs N] [--prior gaussian|uniform|PRIOR.toml]
[--chunk-size K] [--nuisance NAME,...|none] [--workers W] [--cluster KIND_OR_ADDRESS]
[--cluster-config TOML] [--overwrite]``

``--measurements model`` uses the measurement populations of an imported anatomy store
(``wiring anatomy import consbi``); ``--select`` picks measurements by id or label, in order.

``--nuisance vpm_boutons,target_sites`` (or the option repeated) draws the anatomy nuisance
parameters of :mod:`wiring.simulation.nuisance` for every simulation, as ``[anatomy] nuisance``
does for ``wiring run``; the spec is part of the store's recorded protocol, so a posterior
trained on the store marginalises them and ``wiring analyze --store`` reports the anatomy
sensitivity table. The default, ``none``, simulates the nominal anatomy.

Running it again on the same ``--out`` with the same arguments resumes an interrupted run:
finished chunks are kept (after their checksums are verified: damaged or missing ones are
redone) and only the unfinished ones are simulated. Other arguments for an existing store are
refused (naming the field that differs) unless ``--overwrite`` is given. The store's lock is held
for the whole command, so a second writer is refused; with ``--overwrite`` every input is checked
first and the old store is replaced only once the new one holds a finished chunk.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from pipelines.commands._argtypes import (
    add_measurement_choice,
    add_progress_option,
    anatomy_parent,
    non_negative_int,
    positive_int,
    rule_parent,
    show_progress,
)
from pipelines.commands._cluster import add_cluster_arguments, cluster_config

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    """Add ``wiring simulate`` to the top-level sub-parsers."""
    p = sub.add_parser(
        "simulate",
        parents=[anatomy_parent(), rule_parent()],
        help="simulate training data (theta, x) into a resumable store",
        description="Draw theta from the prior and simulate the measurements for each, in "
        "chunks that dask workers fill in parallel. Rerun on the same --out to resume.",
    )
    p.add_argument("--measurements", required=True, metavar="NAME_OR_PATH",
                   help="measurement set: built-in name (vpm-invivo, rat-invitro), a file, or "
                   "'model' (the measurement populations of the --anatomy store)")
    add_measurement_choice(
        p, n_pairs_help="pairs sampled per measurement and simulation (default: as many as "
        "the experiment tested; also used for records that do not say how many)")
    p.add_argument("--n", type=positive_int, required=True, help="number of simulations")
    p.add_argument("--seed", type=non_negative_int, required=True, help="run seed")
    p.add_argument("--out", type=Path, required=True, help="simulation store (e.g. sims.zarr)")
    p.add_argument("--prior", default="gaussian", metavar="KIND_OR_FILE",
                   help="gaussian (default; the paper's N(1, 0.05 I) for dso; truncated to "
                   "the plausible range for parameters with a bounded domain), uniform (the "
                   "rule's plausible ranges), or a TOML/JSON prior file")
    p.add_argument("--chunk-size", type=positive_int, default=10_000,
                   help="simulations per task (default 10000)")
    p.add_argument("--workers", type=non_negative_int, default=0,
                   help="local dask worker processes (default 0: run in this process)")
    add_cluster_arguments(p, default="local if --workers > 0, else in this process")
    p.add_argument("--replace", action="store_true",
                   help="sample each measurement's pairs with replacement (the research code's "
                   "protocol; default: distinct pairs, as in a recording)")
    p.add_argument("--no-pooling", action="store_true",
                   help="simulate pooled measurements (includes = [...]) independently of their "
                   "parts, as the research code does")
    p.add_argument("--nuisance", action="append", default=None, metavar="NAME,...|none",
                   help="anatomy nuisance parameters every simulation draws from their prior "
                   "(vpm_boutons, target_sites; comma-separated or the option repeated), as "
                   "[anatomy] nuisance of `wiring run`; default none: the nominal anatomy")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing store made with other arguments")
    add_progress_option(p, what="the progress bar")
    p.set_defaults(handler=_run)


def open_anatomy(text: str, seed: int) -> Any:
    """A structural model from a store path or a generator preset name."""
    path = Path(text)
    if path.exists():
        from anatomy.store import open_model

        return open_model(path)
    from anatomy.generate import PRESETS, build_model

    if text not in PRESETS:
        raise FileNotFoundError(
            f"--anatomy {text!r} is neither an existing store nor a preset "
            f"({', '.join(PRESETS)})"
        )
    return build_model(text, seed=seed)


def open_measurements(args: argparse.Namespace, model: Any) -> Any:
    """The set of ``--measurements`` (restricted by ``--select``); for ``model`` it needs the
    opened model and returns None without one."""
    from wiring.measurements import MODEL_SET, resolve_measurement_set

    if args.measurements == MODEL_SET and model is None:
        return None
    n_pairs = getattr(args, "n_pairs", None)
    return resolve_measurement_set(
        args.measurements, model=model, select=args.select,
        default_n_pairs=n_pairs if isinstance(n_pairs, int) else None,
    )


def parse_nuisance(values: list[str] | None) -> tuple[str, ...]:
    """The names of ``--nuisance`` (comma-separated, repeatable; ``none``: no parameter),
    checked like ``[anatomy] nuisance``: an unknown or repeated name is an
    :class:`~wiring.errors.InvalidParameterError` naming the known ones."""
    from wiring.errors import InvalidParameterError
    from wiring.simulation.nuisance import NUISANCE_PARAMETERS, check_nuisance_names

    if values is None:
        return ()
    known = f"{', '.join(NUISANCE_PARAMETERS)}, or none for the nominal anatomy"
    names = [t.strip() for v in values for t in v.split(",")]
    if any(not n for n in names):
        raise InvalidParameterError(f"--nuisance {','.join(values)!r} has an empty name; "
                                    f"use {known}")
    if "none" in names:
        if len(names) > 1:
            raise InvalidParameterError(
                f"--nuisance none cannot be combined with parameter names (got {names})")
        return ()
    try:
        return check_nuisance_names(names)
    except InvalidParameterError as err:
        raise InvalidParameterError(f"--nuisance: {err} (or none for the nominal anatomy)"
                                    ) from None


def resolve_prior(text: str, rule: Any) -> Any:
    """A checked :class:`wiring.inference.priors.PriorSpec` from a kind name or a TOML/JSON file."""
    from wiring.inference.priors import PRIOR_KINDS, PriorSpec, build_prior_spec, check_prior_spec

    if text in PRIOR_KINDS:
        return build_prior_spec(rule, text)
    path = Path(text)
    if not path.is_file():
        raise FileNotFoundError(
            f"--prior {text!r} is neither a prior kind ({', '.join(PRIOR_KINDS)}) nor a file"
        )
    body = path.read_text()
    spec = PriorSpec.from_json(body) if path.suffix == ".json" else PriorSpec.from_toml(body)
    return check_prior_spec(spec, rule)


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from anatomy.hashing import anatomy_hash
    from anatomy.storeguard import refuse_foreign, remove_leftovers, store_lock
    from wiring.errors import OutputExistsError
    from wiring.rules.registry import get_rule, rule_provenance
    from wiring.simulation.store import SimulationStore, is_simulation_store, simulate_to_store

    nuisance = parse_nuisance(args.nuisance)
    rule = get_rule(args.rule)
    prior = resolve_prior(args.prior, rule)
    mset = open_measurements(args, None)  # a bad set fails before a model is built
    if mset is not None:
        # refuse at once what cannot fit, before the anatomy is opened or anything is written
        _check_size(args, prior, mset)
    model = open_anatomy(args.anatomy, args.anatomy_seed)
    if mset is None:  # 'model': the measurements live in the anatomy store
        mset = open_measurements(args, model)
        _check_size(args, prior, mset)
    from wiring.simulation.simulator import Simulator

    simulator = Simulator(model, rule, mset, n_pairs=args.n_pairs or "experiment",
                          replace=args.replace, pooling=not args.no_pooling,
                          nuisance=nuisance or None)
    config = dict(
        n=args.n, chunk_size=args.chunk_size, prior_spec=prior, rule_info=rule_provenance(rule),
        measurement_names=list(mset.names), measurement_hash=mset.content_hash(),
        anatomy_hash=anatomy_hash(model), seed=args.seed, protocol=simulator.protocol(),
    )
    out: Path = args.out
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist; create it first")
    # every input was checked above (populations selected, features built) before anything is
    # written; an old store is replaced only once the new one holds a finished chunk
    with store_lock(out, what="simulation store"):
        remove_leftovers(out)
        store = None
        if out.exists() and not args.overwrite:
            store = SimulationStore.open(out)
            store.check_config(**config)
            store.verify(repair=True)
            log.info("resuming %s: %d of %d simulations done", out, store.n_done, store.n)
        elif out.exists() and not is_simulation_store(out):
            raise refuse_foreign(out, "a simulation store", OutputExistsError)
        if store is None:
            store = SimulationStore.create(out, overwrite=args.overwrite, prefill=simulator,
                                           **config)
        if store.todo_chunks():
            store = _simulate(store, simulator, args, simulate_to_store)
        else:
            log.info("%s is complete; nothing to do", out)
    _, x = store.load()
    invalid = int((~np.isfinite(x).all(axis=1)).sum())
    anatomy_text = (f"anatomy nuisance {', '.join(nuisance)} drawn per simulation"
                    if nuisance else "nominal anatomy")
    sys.stdout.write(
        f"{out}: {store.n_done} simulations of rule {rule.name!r} on {len(mset.names)} "
        f"measurements, {anatomy_text} ({invalid} with NaN x, e.g. theta outside the rule's "
        f"domain)\n"
    )
    return 0


def _check_size(args: argparse.Namespace, prior: Any, mset: Any) -> None:
    from wiring.simulation.resources import check_simulation_size

    per = args.n_pairs or None
    check_simulation_size(args.out, n=args.n, d=prior.d, m=len(mset.names),
                          chunk_size=args.chunk_size,
                          pairs_per_row=sum(per or int(m.n_pairs) for m in mset))


def _simulate(store: Any, simulator: Any, args: argparse.Namespace, run: Any) -> Any:
    kind = args.cluster or ("local" if args.workers > 0 else "threads")
    if kind == "threads":
        return run(store, simulator, client=None, progress=show_progress(args))
    from pipelines.cluster import connect

    with connect(cluster_config(args, kind=kind, workers=args.workers)) as client:
        return run(store, simulator, client=client, progress=show_progress(args))
