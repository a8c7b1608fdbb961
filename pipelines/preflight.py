"""Check a whole run configuration before the first stage runs.

``wiring run`` used to find an unknown rule in ``analysis.compare_rules`` or an unwritable
output only after the anatomy, the simulations and the training had run. :func:`preflight`
checks, in seconds and before anything is written, everything that can be checked without
doing the work: the rule and every compared rule are installed and pass their prior checks,
the measurement set loads (and, when the anatomy store already exists, every selector selects
neurons in it), the anatomy source exists, the cluster kind is known, the run directory and the
cache can be written, the simulation store fits the free disk and the memory, and the
analysis's sample counts fit the memory (:func:`wiring.analysis.resources.check_analysis_size`,
the check ``wiring analyze`` makes).
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

from pipelines.config import RunConfig
from pipelines.errors import ConfigError
from wiring.errors import WiringError

__all__ = ["ANALYSIS_OPTIONS", "configured_prior", "preflight"]

log = logging.getLogger(__name__)

_CLUSTER_KINDS = ("local", "threads")


def _writable(path: Path, what: str) -> None:
    """Raise unless a file can be created in ``path`` (or, if it does not exist yet, in its
    nearest existing parent, where it would be created)."""
    target = path
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir():
        raise ConfigError(f"{what} {path} cannot be created: {target} is not a directory")
    probe = target / f".wiring-write-test-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"")
    except OSError as err:
        raise ConfigError(
            f"{what} {path} is not writable ({err.strerror or err}); choose another location"
        ) from None
    finally:
        probe.unlink(missing_ok=True)


def configured_prior(config: RunConfig, rule: Any) -> Any:
    """The checked prior spec of the run's main rule (``[rule]`` prior settings)."""
    from wiring.inference.priors import build_prior_spec

    return build_prior_spec(rule, kind=config.rule.prior, **config.rule.prior_kwargs())


#: The ``[analysis]`` setting of each sample count of the standard analysis.
ANALYSIS_OPTIONS: dict[str, str] = {
    "n_samples": "analysis.posterior_samples",
    "n_predictive": "analysis.predictive_samples",
    "n_sbc": "analysis.sbc_runs",
    "n_sbc_samples": "analysis.sbc_posterior_samples",
    "n_prediction_samples": "analysis.prediction_samples",
}


def _check_analysis_size(config: RunConfig, d: int, m: int) -> None:
    """The analyze stage's sample counts against the memory (one line naming the setting)."""
    from wiring.analysis.resources import AnalysisCounts, check_analysis_size

    a = config.analysis
    counts = AnalysisCounts(
        n_samples=a.posterior_samples, n_predictive=a.predictive_samples, n_calibration=100,
        n_sbc=a.sbc_runs, n_sbc_samples=a.sbc_posterior_samples,
        n_prediction_samples=a.prediction_samples if a.predictions else 0)
    check_analysis_size(counts, ANALYSIS_OPTIONS, d=d, m=m,
                        hidden_features=config.inference.hidden_features,
                        num_bins=10 if config.inference.estimator == "nsf" else 0)


def _anatomy_store(config: RunConfig, cache_dir: Path) -> Path | None:
    """The anatomy store the run will open, if it exists already."""
    a = config.anatomy
    if a.path:
        path = Path(a.path)
        if not path.exists():
            raise ConfigError(f"anatomy.path {a.path!r} does not exist")
        return path
    from anatomy.generate import PRESETS

    if a.preset not in PRESETS:
        raise ConfigError(
            f"anatomy.preset {a.preset!r} is not a generator preset ({', '.join(PRESETS)})"
        )
    cached = cache_dir / "anatomy" / f"{a.preset}-seed{a.seed}.zarr"
    return cached if cached.exists() else None


def preflight(config: RunConfig, run_dir: Path, cache_dir: Path) -> None:
    """Raise a one-line error for the first problem that would stop the run later.

    Raises
    ------
    ConfigError, WiringError, AnatomyError
        Naming the setting (and file) at fault.
    """
    from pipelines.cluster import BATCH_SYSTEMS
    from wiring.inference.priors import build_prior_spec
    from wiring.measurements import load_measurement_set
    from wiring.rules.registry import get_rule
    from wiring.simulation.resources import check_simulation_size

    # rules and priors
    try:
        rule = get_rule(config.rule.name)
    except WiringError as err:
        raise ConfigError(f"rule.name: {err}") from err
    try:
        configured_prior(config, rule)
    except WiringError as err:
        raise ConfigError(f"rule.prior ({config.rule.prior}): {err}") from err
    dupes = sorted({n for n in config.analysis.compare_rules
                    if config.analysis.compare_rules.count(n) > 1})
    if dupes:
        raise ConfigError(f"analysis.compare_rules lists {dupes} more than once")
    for name in config.analysis.compare_rules:
        try:
            other = get_rule(name)
            build_prior_spec(other, kind="uniform")
        except WiringError as err:
            raise ConfigError(f"analysis.compare_rules: {err}") from err

    # measurements, and their selectors against an anatomy that exists already
    store = _anatomy_store(config, cache_dir)
    mset = None
    if config.measurements.set != "model":
        try:
            mset = load_measurement_set(config.measurements.set)
        except WiringError as err:
            raise ConfigError(f"measurements.set: {err}") from err
    if store is not None and mset is not None:
        from anatomy.errors import StoreValidationError
        from anatomy.store import open_model
        from wiring.measurements.selectors import select

        try:
            model = open_model(store, validate=False)
        except StoreValidationError:
            if config.anatomy.path:
                raise  # the user's store: its error, as the anatomy stage would give it
            mset = None  # a changed cached preset is rebuilt by the anatomy stage
        for m in mset or ():
            for side, selector in (("pre", m.pre), ("post", m.post)):
                try:
                    select(model, selector)
                except WiringError as err:
                    raise ConfigError(
                        f"measurements.set {config.measurements.set!r}, measurement {m.id!r} "
                        f"({side}) in anatomy {store}: {err}"
                    ) from err

    # where dask runs
    kind = config.cluster.kind.strip()
    if kind not in _CLUSTER_KINDS + tuple(BATCH_SYSTEMS) and "://" not in kind and ":" not in kind:
        raise ConfigError(
            f"cluster.kind {kind!r} is not one of local, threads, {', '.join(BATCH_SYSTEMS)}, "
            f"nor a scheduler address like tcp://host:8786"
        )

    # outputs
    _writable(run_dir, "the run directory")
    _writable(cache_dir, "the cache directory (run.cache)")
    if mset is not None:
        sims = run_dir / "simulations.zarr"
        existing = sum(f.stat().st_size for f in sims.rglob("*") if f.is_file()) if (
            sims.exists()) else 0
        check_simulation_size(
            sims, n=config.simulation.n, d=len(rule.params), m=len(mset.names),
            existing_bytes=existing, chunk_size=config.simulation.chunk_size,
            pairs_per_row=config.measurements.n_pairs * len(mset.names)
            or sum(int(m.n_pairs) for m in mset),
        )
    # the analysis's samples (a 'model' set's size is known only once the anatomy is open:
    # one measurement stands in, the counts dominate the estimates)
    _check_analysis_size(config, d=len(rule.params), m=len(mset.names) if mset is not None else 1)
    log.debug("preflight of %s passed", os.fspath(run_dir))
