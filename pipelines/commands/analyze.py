"""``wiring analyze``: the posterior report of a trained posterior.

``wiring analyze --posterior DIR --anatomy PATH_OR_PRESET --measurements NAME_OR_PATH|model
--out REPORT_DIR [--store STORE] [--select ID,...] [--x-o 0.43,...] [--n-samples N] [--n-sbc N]
[--seed S] [--skip ...] [--no-sensitivity] [--sensitivity-simulations N] [--sensitivity-rows N]
[--sensitivity-max-epochs N] [--no-progress] [--overwrite]``

Runs the posterior summary (pairplot), the posterior predictive check, simulation-based
calibration and the connectivity predictions for every cell-type pair, and writes
``REPORT_DIR`` with the figures (PNG), ``summary.json``, CSV tables and ``index.html``.
The posterior is conditioned on ``--x-o`` (one value per measurement, in the set's order) or,
by default, on the measured values of the set.

When the posterior's training simulations drew anatomy nuisance parameters (``wiring simulate
--nuisance vpm_boutons,...``), the report also has the anatomy sensitivity section of ``wiring
run`` (nominal, marginalised, VPM boutons ×0.5 and ×2: table, CSV, ``summary.json`` entry and
forest plot; :func:`wiring.analysis.sensitivity.anatomy_sensitivity_from_store`, the code the
run's analyze stage calls). Its conditional estimator trains on the posterior's simulations, so
it needs ``--store``, the store ``wiring train`` read (checked against the posterior's
manifest: rule, anatomy, measurements, protocol, seed and content hash); without one the
section is left out with one log line saying why. ``--no-sensitivity`` leaves it out.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from pipelines.commands._argtypes import (
    add_measurement_choice,
    add_progress_option,
    anatomy_parent,
    non_negative_int,
    positive_int,
    show_progress,
)
from pipelines.commands._locking import holding_output_lock
from pipelines.commands.run import sensitivity_lines

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    """Add ``wiring analyze`` to the top-level sub-parsers."""
    from wiring.analysis.sensitivity import DEFAULT_TRAINING_ROWS, DEFAULT_WIDE_SIMULATIONS
    from wiring.analysis.standard import ANALYSES

    p = sub.add_parser(
        "analyze",
        parents=[anatomy_parent()],
        help="posterior summary, predictive check, calibration and predictions as a report",
        description="Analyze a trained posterior and write a report directory (PNG figures, "
        "summary.json, CSV tables and one self-contained index.html).",
    )
    p.add_argument("--posterior", type=Path, required=True, metavar="DIR",
                   help="posterior directory written by `wiring train`")
    p.add_argument("--measurements", required=True, metavar="NAME_OR_PATH",
                   help="the measurement set the posterior was trained on ('model': the "
                   "measurement populations of the --anatomy store)")
    add_measurement_choice(p)
    p.add_argument("--x-o", default=None, metavar="V1,V2,...",
                   help="observed connection probabilities, one per measurement in set order "
                   "(default: the set's measured values)")
    p.add_argument("--out", type=Path, required=True, metavar="REPORT_DIR",
                   help="report directory to write")
    p.add_argument("--n-samples", type=positive_int, default=2000,
                   help="posterior samples for the summary (default 2000)")
    p.add_argument("--n-predictive", type=positive_int, default=1000,
                   help="posterior predictive simulations (default 1000)")
    p.add_argument("--n-calibration", type=non_negative_int, default=100,
                   help="replicates calibrating the predictive p-values (default 100; 0: off)")
    p.add_argument("--n-conditions", type=non_negative_int, default=10,
                   help="posterior samples the conditional correlations (sbi "
                   "conditional_corrcoeff) are averaged over (default 10; 0: off)")
    p.add_argument("--n-sbc", type=positive_int, default=200,
                   help="simulation-based calibration runs (default 200)")
    p.add_argument("--n-sbc-samples", type=positive_int, default=1000,
                   help="posterior samples per calibration run (default 1000)")
    p.add_argument("--n-prediction-samples", type=positive_int, default=200,
                   help="posterior samples for the type-pair predictions (default 200)")
    p.add_argument("--max-pairs", type=positive_int, default=2000,
                   help="largest number of pairs evaluated per type pair (default 2000)")
    p.add_argument("--n-pairs", default="experiment", metavar="experiment|N",
                   help="pairs per simulated experiment: as tested ('experiment', default) or "
                   "a fixed number (also used for records that do not say how many); use what "
                   "the training simulations used")
    p.add_argument("--skip", default="", metavar="NAME,...",
                   help=f"analyses to leave out ({', '.join(ANALYSES)})")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed (default 0)")
    p.add_argument("--store", type=Path, default=None, metavar="STORE",
                   help="the simulation store the posterior was trained on (`wiring train "
                   "--store`): the training data of the anatomy sensitivity table, made when "
                   "the simulations drew anatomy nuisance parameters (`wiring simulate "
                   "--nuisance`)")
    p.add_argument("--no-sensitivity", action="store_true",
                   help="leave out the anatomy sensitivity table")
    p.add_argument("--sensitivity-simulations", type=non_negative_int,
                   default=DEFAULT_WIDE_SIMULATIONS, metavar="N",
                   help="extra simulations with VPM boutons x1/2.5 .. x2.5 for the "
                   f"sensitivity's conditional estimator (default {DEFAULT_WIDE_SIMULATIONS})")
    p.add_argument("--sensitivity-rows", type=non_negative_int, default=DEFAULT_TRAINING_ROWS,
                   metavar="N", help="the store's first N simulations the conditional "
                   f"estimator also trains on (default {DEFAULT_TRAINING_ROWS}; 0: all)")
    p.add_argument("--sensitivity-max-epochs", type=non_negative_int, default=0, metavar="N",
                   help="epoch cap of the conditional estimator (default 0: the posterior's "
                   "own cap; it trains with the posterior's schedule until it converges)")
    p.add_argument("--allow-anatomy-mismatch", action="store_true",
                   help="analyze even if the posterior was trained on another anatomy")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_progress_option(p, what="the anatomy sensitivity's training progress bar")
    p.set_defaults(handler=holding_output_lock(_run, what="report directory"))


def _parse_x_o(text: str, names: tuple[str, ...]) -> Any:
    import numpy as np

    from wiring.errors import InvalidParameterError, ShapeMismatchError

    parts = [t.strip() for t in text.split(",") if t.strip()]
    try:
        values = np.array([float(t) for t in parts])
    except ValueError as err:
        raise InvalidParameterError(
            f"--x-o {text!r} is not a comma-separated list of numbers ({err})"
        ) from None
    if values.shape != (len(names),):
        raise ShapeMismatchError(
            f"--x-o has {values.size} value(s) but measurement set has {len(names)} "
            f"({', '.join(names)}); give one value per measurement in that order"
        )
    if not np.all(np.isfinite(values)) or np.any((values < 0) | (values > 1)):
        raise InvalidParameterError(
            f"--x-o values must be connection probabilities in [0, 1], got {values.tolist()}"
        )
    return values


def _n_pairs(text: str) -> Any:
    from wiring.errors import InvalidParameterError

    if text == "experiment":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidParameterError(
            f"--n-pairs {text!r}: use 'experiment' or a positive number of pairs"
        )
    return value


#: The option of each sample count of the standard analysis (wiring.analysis.resources).
SIZE_OPTIONS: dict[str, str] = {
    "n_samples": "--n-samples",
    "n_predictive": "--n-predictive",
    "n_calibration": "--n-calibration",
    "n_sbc": "--n-sbc",
    "n_sbc_samples": "--n-sbc-samples",
    "n_prediction_samples": "--n-prediction-samples",
}


def check_sizes(args: argparse.Namespace, skip: tuple[str, ...], posterior: Any) -> None:
    """Refuse sample counts that need more memory than this machine has (one line naming the
    option and the estimated size); skipped analyses are not counted."""
    from wiring.analysis.resources import AnalysisCounts, check_analysis_size

    on = {name: name not in skip for name in ("summary", "predictive", "calibration",
                                               "predictions")}
    counts = AnalysisCounts(
        n_samples=args.n_samples if on["summary"] else 0,
        n_predictive=args.n_predictive if on["predictive"] else 0,
        n_calibration=args.n_calibration if on["predictive"] else 0,
        n_sbc=args.n_sbc if on["calibration"] else 0,
        n_sbc_samples=args.n_sbc_samples if on["calibration"] else 0,
        n_prediction_samples=args.n_prediction_samples if on["predictions"] else 0,
    )
    net = posterior.manifest.get("estimator") or {}
    splines = net.get("estimator") in ("nsf", "maf_rqs")
    check_analysis_size(counts, SIZE_OPTIONS, d=len(posterior.param_names),
                        m=len(posterior.measurement_names),
                        hidden_features=int(net.get("hidden_features") or 50),
                        num_bins=int(net.get("num_bins") or 10) if splines else 0)


def _run(args: argparse.Namespace) -> int:
    from anatomy.hashing import anatomy_hash
    from pipelines.commands.simulate import open_anatomy, open_measurements
    from wiring.analysis.standard import ANALYSES, run_standard_analysis
    from wiring.errors import InvalidParameterError, PosteriorMismatchError
    from wiring.inference.npe import check_trained_for, load_posterior
    from wiring.report import check_report_target, write_report
    from wiring.rules.registry import get_rule
    from wiring.simulation.simulator import Simulator

    out: Path = args.out
    # before any work: an existing --out must be a report of this package to be replaced
    check_report_target(out, overwrite=args.overwrite)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist; create it first")
    skip = tuple(s.strip() for s in args.skip.split(",") if s.strip())
    unknown = sorted(set(skip) - set(ANALYSES))
    if unknown:
        raise InvalidParameterError(
            f"--skip {args.skip!r}: unknown analysis {unknown}; known: {', '.join(ANALYSES)}"
        )
    n_pairs = _n_pairs(args.n_pairs)
    args.n_pairs = n_pairs
    # the sample counts against the memory, before a model is opened or a sample drawn (the
    # posterior's manifest gives the numbers of parameters and measurements)
    posterior = load_posterior(args.posterior)
    check_sizes(args, skip, posterior)
    mset = open_measurements(args, None)  # a bad set fails before a model is built
    model = None
    if mset is None:  # 'model': the measurements live in the anatomy store
        model = open_anatomy(args.anatomy, args.anatomy_seed)
        mset = open_measurements(args, model)
    names = tuple(str(n) for n in mset.names)
    check_trained_for(posterior.manifest, args.posterior, measurement_names=names)
    manifest = posterior.manifest
    rule = get_rule(str(manifest["rule"]["name"]))
    x_o = _parse_x_o(args.x_o, names) if args.x_o is not None else mset.x_o
    if model is None:
        model = open_anatomy(args.anatomy, args.anatomy_seed)
    trained_on = manifest.get("anatomy_hash")
    here = anatomy_hash(model)
    if trained_on and trained_on != here and not args.allow_anatomy_mismatch:
        raise PosteriorMismatchError(
            f"posterior {str(args.posterior)!r} was trained on anatomy {str(trained_on)[:12]}, "
            f"but --anatomy {args.anatomy!r} is {here[:12]}; pass the training anatomy (or "
            f"--allow-anatomy-mismatch to analyze anyway)"
        )
    protocol = manifest.get("protocol") or {}  # the training simulations' sampling protocol
    simulator = Simulator(model, rule, mset, n_pairs=n_pairs,
                          replace=bool(protocol.get("replace", False)),
                          pooling=bool(protocol.get("pooling", True)),
                          nuisance=(protocol.get("nuisance") or {}).get("names"))
    store = _training_store(args, manifest, simulator, here)  # checked before any work
    params = list(rule.params)
    analysis = run_standard_analysis(
        posterior, simulator, x_o,
        prior_spec=posterior.prior_spec,
        param_names=posterior.param_names,
        reference=[p.default for p in params],
        labels=[f"{p.name} ({p.unit})" if p.unit else p.name for p in params],
        model=model, rule=rule, measurement_set=mset,
        n_samples=args.n_samples, n_predictive=args.n_predictive,
        n_calibration=args.n_calibration, n_sbc=args.n_sbc, n_sbc_samples=args.n_sbc_samples,
        n_prediction_samples=args.n_prediction_samples, max_pairs=args.max_pairs,
        seed=args.seed, skip=skip, n_conditions=args.n_conditions,
    )
    sections = list(analysis.sections)
    timings = dict(analysis.timings_s)
    if store is not None:
        t0 = time.perf_counter()
        sections.append(_sensitivity(args, posterior, simulator, store, x_o,
                                     [p.default for p in params],
                                     analysis.results.get("summary")))
        timings["sensitivity"] = time.perf_counter() - t0
    config = {
        "command": "wiring analyze",
        "posterior": str(args.posterior),
        "anatomy": str(args.anatomy),
        "anatomy_seed": args.anatomy_seed,
        "anatomy_hash": here,
        "measurements": str(args.measurements),
        "select": args.select,
        "measurement_names": list(names),
        "x_o": [float(v) for v in x_o],
        "seed": args.seed,
        "n_pairs": n_pairs,
        "n_samples": args.n_samples,
        "n_predictive": args.n_predictive,
        "n_calibration": args.n_calibration,
        "n_conditions": args.n_conditions,
        "n_sbc": args.n_sbc,
        "n_sbc_samples": args.n_sbc_samples,
        "n_prediction_samples": args.n_prediction_samples,
        "max_pairs": args.max_pairs,
        "skip": list(skip),
        "store": None if args.store is None else str(args.store),
        "sensitivity": None if store is None else {
            "simulations": args.sensitivity_simulations, "rows": args.sensitivity_rows,
            "max_epochs": args.sensitivity_max_epochs},
        "rule": manifest.get("rule"),
        "prior": manifest.get("prior"),
        "estimator": manifest.get("estimator"),
        "training": {k: v for k, v in manifest.get("training", {}).items()
                     if not isinstance(v, (list, dict))},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    index = write_report(out, config=config, sections=sections,
                         title=f"Posterior report: rule {rule.name}, {mset.name}",
                         overwrite=args.overwrite)
    lines = [f"{index}"]
    res = analysis.results
    if "summary" in res:
        s = res["summary"]
        lines.append(
            "posterior mean " + ", ".join(f"{n}={m:.3g}" for n, m in zip(s.param_names, s.mean,
                                                                         strict=True))
            + f"; a-priori rule inside the 95 % HPD region: {s.reference_in_hpd}")
    if "predictive" in res:
        pc = res["predictive"]
        p = pc.p_value_calibrated if pc.p_value_calibrated is not None else pc.p_value
        lines.append(f"smallest predictive p-value: {float(p.min()):.3g}")
    if store is not None:
        lines += sensitivity_lines(sections[-1].to_dict())
    if "calibration" in res:
        lines.append(f"calibration: {res['calibration'].verdict}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _training_store(args: argparse.Namespace, manifest: dict[str, Any], simulator: Any,
                    anatomy: str) -> Any:
    """The ``--store`` to compute the anatomy sensitivity table on, checked against the
    posterior and the ``--anatomy`` (hash ``anatomy``) the wide-ν rows are simulated on; None
    (with one log line saying why) when the table is not made."""
    from wiring.analysis.sensitivity import check_training_store, sensitivity_unavailable
    from wiring.errors import InvalidParameterError, StoreMismatchError
    from wiring.simulation.store import SimulationStore

    if args.no_sensitivity:
        return None
    reason = sensitivity_unavailable(simulator)
    if args.store is None:
        if reason is None:
            log.info("anatomy sensitivity skipped: its conditional estimator trains on the "
                     "posterior's simulations; pass --store STORE (the store `wiring train` "
                     "read) to add it, or --no-sensitivity")
        return None
    store = SimulationStore.open(args.store)
    check_training_store(store, manifest, simulator)
    if reason is not None:
        log.info("anatomy sensitivity skipped: %s (simulate with --nuisance vpm_boutons,... "
                 "to add it)", reason)
        return None
    reason = sensitivity_unavailable(simulator, store)
    if reason is not None:
        raise InvalidParameterError(f"--store: no anatomy sensitivity: {reason}")
    if store.anatomy_hash != anatomy:  # possible with --allow-anatomy-mismatch
        raise StoreMismatchError(
            f"the anatomy sensitivity simulates on the training anatomy "
            f"({store.anatomy_hash[:12]}), but --anatomy {args.anatomy!r} is {anatomy[:12]}; "
            f"pass the training anatomy, or --no-sensitivity")
    return store


def _sensitivity(args: argparse.Namespace, posterior: Any, simulator: Any, store: Any,
                 x_o: Any, reference: Any, summary: Any) -> Any:
    """The anatomy sensitivity table, as the analyze stage of ``wiring run`` makes it:
    q(θ | x, ν) trains like the posterior (its manifest's network and schedule), with the
    seed ``wiring run`` derives from its run seed for it."""
    from pipelines.context import derive_seed
    from wiring.analysis.sensitivity import (
        anatomy_sensitivity_from_store,
        conditional_train_kwargs,
    )

    kwargs = conditional_train_kwargs(posterior.manifest,
                                      max_epochs=args.sensitivity_max_epochs or None)
    kwargs["num_threads"] = 1  # small networks: one thread (see `wiring train --threads`)
    return anatomy_sensitivity_from_store(
        posterior, simulator, store, x_o,
        param_names=posterior.param_names,
        reference=reference,
        rows=args.sensitivity_rows,
        n_wide=args.sensitivity_simulations,
        n_samples=min(args.n_samples, 5000),
        seed=derive_seed(args.seed, "sensitivity"),
        train_kwargs=kwargs,
        marginal_summary=summary,
        progress=show_progress(args),
    )
