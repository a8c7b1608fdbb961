"""Run configuration: one validated TOML file holds every setting of a pipeline run.

Sections map to frozen dataclasses; unknown keys and wrong types are errors naming the key
(``simulation.n must be an integer, got 'many'``). ``RunConfig.to_toml`` writes the resolved
configuration into every run directory, and ``config_hash`` names the run directory so that the
same configuration always resumes the same run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import tomli_w

from pipelines.errors import ConfigError
from pipelines.walltime import BATCH_KINDS, worker_lifetime

__all__ = [
    "AnalysisConfig",
    "AnatomyConfig",
    "ClusterConfig",
    "ConfigError",
    "InferenceConfig",
    "MeasurementsConfig",
    "RuleConfig",
    "RunConfig",
    "RunSection",
    "SimulationConfig",
    "builtin_configs",
    "load_config",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSection:
    """Run identity: name, master seed and the parent directory of run directories."""

    name: str = "default"
    seed: int = 0
    output: str = "wiring-runs"
    cache: str = ""
    """Directory for reusable anatomy stores and feature tables (default: ``cache`` beside the
    run directory)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AnatomyConfig:
    """Which structural model: a generator preset (built once, cached) or an existing store."""

    preset: str = "column"
    seed: int = 0
    path: str = ""
    """An existing anatomy store; overrides ``preset`` when set."""
    nuisance: list[str] = field(default_factory=lambda: ["vpm_boutons", "target_sites"])
    """Anatomy nuisance parameters every simulation draws from their prior and NPE
    marginalises (``vpm_boutons``, ``target_sites``; see ``wiring.simulation.nuisance``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasurementsConfig:
    """The measurement set and how experiments are emulated."""

    set: str = "vpm-invivo"
    """A built-in set, a .toml/.csv file, or ``model``: the measurement populations of an
    imported anatomy (``[anatomy] path``)."""
    select: list[str] = field(default_factory=list)
    """Measurements to use, by id or label, in this order (the order of x); empty: every one
    (for ``model``: the source's default experiment if it defines one); ``["all"]``: every
    one."""
    n_pairs: int = 0
    """Pairs sampled per measurement and simulation; 0 = as many as the experiment tested.
    Also the pairs assumed for records that do not give how many were tested."""
    slice_thickness_um: float = 300.0
    slice_max_distance_um: float = 100.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleConfig:
    """The wiring rule and its prior."""

    name: str = "dso"
    prior: Literal["gaussian", "uniform"] = "gaussian"
    prior_loc: list[float] = field(default_factory=list)
    """Gaussian mean (default: the rule's a-priori parameters)."""
    prior_scale: list[float] = field(default_factory=list)
    """Gaussian standard deviation per parameter (default: the paper's sqrt(0.05) for dso)."""
    prior_low: list[float] = field(default_factory=list)
    """Uniform: lower box bounds; Gaussian: truncation bounds (default: the plausible range for
    parameters with a bounded domain, none otherwise)."""
    prior_high: list[float] = field(default_factory=list)
    """Uniform: upper box bounds; Gaussian: truncation bounds (see ``prior_low``)."""

    def prior_kwargs(self) -> dict[str, list[float]]:
        """The prior settings given, as keyword arguments of
        :func:`wiring.inference.priors.build_prior_spec` (``loc``/``scale`` only for a Gaussian)."""
        given = {"low": self.prior_low, "high": self.prior_high}
        if self.prior == "gaussian":
            given = {"loc": self.prior_loc, "scale": self.prior_scale, **given}
        return {key: value for key, value in given.items() if value}


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationConfig:
    """Size and chunking of the training set, and the sampling protocol."""

    n: int = 20_000
    chunk_size: int = 2_000
    replace: bool = False
    """Sample each measurement's pairs with replacement (the research code's protocol); the
    default samples distinct pairs, as a recording does."""
    pooling: bool = True
    """Pooled measurements (``includes``) test their parts' sampled pairs; false: every
    measurement samples all its pairs independently (the research code's protocol)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InferenceConfig:
    """Neural posterior estimation settings."""

    estimator: Literal["nsf", "maf", "mdn", "made"] = "nsf"
    hidden_features: int = 50
    num_transforms: int = 5
    batch_size: int = 1_000
    learning_rate: float = 2e-3
    """Initial Adam step size (before 0.1.0: 5e-4, constant)."""
    validation_fraction: float = 0.1
    stop_after_epochs: int = 10
    """Stop after this many epochs without a better validation loss (before 0.1.0: 20)."""
    max_epochs: int = 2_000
    lr_schedule: Literal["plateau", "constant"] = "plateau"
    """``plateau``: multiply the step size by ``lr_decay`` after ``lr_patience`` epochs without
    a better validation loss, stop below ``min_learning_rate``; ``constant``: sbi's fixed step
    (the behaviour before 0.1.0, with ``learning_rate = 5e-4`` and ``stop_after_epochs = 20``)."""
    lr_decay: float = 0.5
    lr_patience: int = 3
    min_learning_rate: float = 5e-5
    threads: int = 1
    """Torch threads for training. The networks are small: one thread is about as fast as two
    on an idle machine and many times faster when other processes share the cores."""
    device: str = "cpu"
    """Where the network trains: ``cpu``, ``cuda`` (``cuda:N``) or ``auto`` (CUDA when torch
    sees a GPU, else the CPU). The saved posterior always lives on the CPU."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalysisConfig:
    """What the analysis stage computes."""

    posterior_samples: int = 10_000
    predictive_samples: int = 1_000
    sbc_runs: int = 200
    sbc_posterior_samples: int = 500
    predictions: bool = True
    prediction_samples: int = 200
    compare_rules: list[str] = field(default_factory=lambda: ["peters_neuron", "peters_synapse"])
    comparison_simulations: int = 10_000
    sensitivity: bool = True
    """The anatomy sensitivity table (needs ``anatomy.nuisance`` with ``vpm_boutons``)."""
    sensitivity_simulations: int = 2_500
    """Extra simulations with VPM boutons ×1/2.5 .. ×2.5 for the conditional estimator."""
    sensitivity_rows: int = 7_500
    """Run simulations (the first rows) the conditional estimator also trains on (0: all)."""
    sensitivity_max_epochs: int = 0
    """Epoch cap of the conditional estimator (0, the default: ``inference.max_epochs``). It
    trains with the ``[inference]`` settings, plateau schedule included, and stops when it
    converges; its epochs and stop reason are in the report (formerly a fixed 60, converged
    or not)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterConfig:
    """Where dask runs: local processes, threads, a scheduler address or a batch system."""

    kind: str = "local"
    """``local`` | ``threads`` | ``slurm`` | ``pbs`` | ``sge`` | ``lsf`` | a scheduler address."""
    workers: int = 0
    """Local workers (0 = one per core)."""
    jobs: int = 4
    """Batch jobs to keep running (each one a worker node); the default of both bounds below."""
    minimum_jobs: int = 0
    """Adaptive scaling: never fewer jobs than this (0 = ``jobs``). Lost or expired jobs are
    replaced to keep at least this many."""
    maximum_jobs: int = 0
    """Adaptive scaling: never more jobs than this (0 = ``jobs``)."""
    start_timeout: float = 600.0
    """Seconds to wait for a worker: for the first job to start, and, whenever every worker job
    has ended mid-stage (cancelled, failed, retired or out of walltime), for a replacement to
    start. Then the run stops with an error and can be resumed."""
    queue: str = ""
    account: str = ""
    cores: int = 8
    processes: int = 1
    memory: str = "16GB"
    walltime: str = "02:00:00"
    """The job's time limit, in the batch system's syntax (see :mod:`pipelines.walltime`)."""
    lifetime: str = ""
    """Workers retire gracefully after this long (``110m``, ``1.5h``, ``01:50:00``) and their
    job is replaced; empty: derived from ``walltime`` (:mod:`pipelines.walltime`); ``off``: no
    retirement (workers die at the walltime)."""
    lifetime_stagger: str = ""
    """Each worker retires at a random time in lifetime ± this (empty: derived)."""
    job_extra_directives: list[str] = field(default_factory=list)
    local_directory: str = ""
    log_directory: str = ""
    """Folder for the batch jobs' output files (default: the submitting directory)."""

    def job_range(self) -> tuple[int, int]:
        """(minimum, maximum) number of batch jobs of the adaptive scaling."""
        return (self.minimum_jobs or self.jobs, self.maximum_jobs or self.jobs)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """A whole pipeline run."""

    run: RunSection = field(default_factory=RunSection)
    anatomy: AnatomyConfig = field(default_factory=AnatomyConfig)
    measurements: MeasurementsConfig = field(default_factory=MeasurementsConfig)
    rule: RuleConfig = field(default_factory=RuleConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def __post_init__(self) -> None:
        _check_values(self)

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-native nested dict."""
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """TOML text of the resolved configuration."""
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> RunConfig:
        """Validate a nested mapping; unknown keys and wrong types raise :class:`ConfigError`."""
        cfg: RunConfig = _build(cls, data, prefix="", source=source)
        return cfg

    def replace(self, **sections: Any) -> RunConfig:
        """A copy with some sections replaced by dicts of overrides or section objects."""
        data = self.to_dict()
        for name, value in sections.items():
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                value = dataclasses.asdict(value)
            if name not in data:
                raise ConfigError(f"unknown config section {name!r}; known: {', '.join(data)}")
            data[name] = {**data[name], **value}
        return RunConfig.from_dict(data)

    def _prior_truncation(self) -> dict[str, list[float | None]] | None:
        """Truncation bounds of the resolved Gaussian prior, or None (uniform, untruncated,
        or a rule that is not installed: preflight reports that)."""
        if self.rule.prior != "gaussian":
            return None
        from wiring.errors import WiringError
        from wiring.inference.priors import build_prior_spec
        from wiring.rules.registry import get_rule

        try:
            spec = build_prior_spec(get_rule(self.rule.name), "gaussian",
                                    **self.rule.prior_kwargs())
        except WiringError:
            return None
        if not spec.truncated:
            return None
        d = spec.to_dict()
        return {"low": d["low"], "high": d["high"]}

    def science_hash(self) -> str:
        """Hash of every setting that changes results (not cluster, output or cache paths)."""
        data = self.to_dict()
        data.pop("cluster")
        data["run"] = {"seed": data["run"]["seed"]}
        if not data["anatomy"].get("path"):
            from anatomy.generate import GENERATOR_VERSION

            # a generated anatomy changes with the generator's calibration
            data["anatomy"]["generator_version"] = GENERATOR_VERSION
        if not data["measurements"]["select"]:
            del data["measurements"]["select"]  # configs written before it existed keep their hash
        truncation = self._prior_truncation()
        if truncation is not None:
            # the resolved truncation of a Gaussian prior changes results even where the
            # config does not spell it out (the rule's default truncation)
            data["rule"]["prior_truncation"] = truncation
        text = json.dumps(data, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


def load_config(path_or_name: str | Path | None = None) -> RunConfig:
    """Load a run config from a TOML file, a built-in name (``default``, ``paper``, ...), or the
    defaults when ``None``."""
    if path_or_name is None:
        return RunConfig()
    text_path = Path(path_or_name)
    if not text_path.exists() and str(path_or_name) in builtin_configs():
        ref = resources.files("pipelines") / "configs" / f"{path_or_name}.toml"
        text, source = ref.read_text(encoding="utf-8"), f"built-in config {path_or_name!r}"
    elif text_path.is_file():
        text, source = text_path.read_text(encoding="utf-8"), str(text_path)
    else:
        raise ConfigError(
            f"config {str(path_or_name)!r} is neither a file nor a built-in config "
            f"({', '.join(builtin_configs())})"
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{source}: not valid TOML: {err}") from err
    return RunConfig.from_dict(data, source=source)


def builtin_configs() -> list[str]:
    """Names of the configs shipped in ``pipelines/configs``."""
    root = resources.files("pipelines") / "configs"
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir() if p.name.endswith(".toml"))


# -- validation helpers --------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}s"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, str(tp)
    )


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{source}: {key} must be {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin is list:
        if not isinstance(value, list):
            raise bad
        (item,) = typing.get_args(tp)
        return [_coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin in (types.UnionType, typing.Union):
        raise TypeError("unions are not used in config sections")
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        if not math.isfinite(float(value)):
            raise ConfigError(f"{source}: {key} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"unsupported config type {tp!r}")


def _build(cls: Any, data: Mapping[str, Any], *, prefix: str, source: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a table")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        from difflib import get_close_matches

        k = unknown[0]
        hint = get_close_matches(k, names, n=1)
        suggestion = f"; did you mean {prefix}{hint[0]!r}?" if hint else ""
        raise ConfigError(
            f"{source}: unknown key {prefix}{k!r}{suggestion} (known keys: {', '.join(names)})"
        )
    kwargs: dict[str, Any] = {}
    for name in names:
        if name not in data:
            continue
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, data[name], prefix=f"{prefix}{name}.", source=source)
        else:
            kwargs[name] = _coerce(data[name], tp, f"{prefix}{name}", source)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def _check_cluster(c: ClusterConfig) -> None:
    """Job counts, bounds, the start timeout, and for batch systems the walltime and the
    workers' lifetime of the ``[cluster]`` section."""
    for key, value in (("jobs", c.jobs), ("cores", c.cores), ("processes", c.processes)):
        if value < 1:
            raise ConfigError(f"cluster.{key} must be >= 1, got {value!r}")
    for key, value in (("minimum_jobs", c.minimum_jobs), ("maximum_jobs", c.maximum_jobs)):
        if value < 0:
            raise ConfigError(f"cluster.{key} must be >= 0 (0 = cluster.jobs), got {value!r}")
    lo, hi = c.job_range()
    if hi < 1 or lo > hi:
        raise ConfigError(
            f"cluster.minimum_jobs ({lo}) must not exceed cluster.maximum_jobs ({hi}), and "
            f"maximum_jobs must be >= 1"
        )
    if not (c.start_timeout > 0 and math.isfinite(c.start_timeout)):
        raise ConfigError(
            f"cluster.start_timeout must be a positive number of seconds, got {c.start_timeout!r}"
        )
    if c.kind.strip() in BATCH_KINDS:
        try:
            worker_lifetime(c)
        except ValueError as err:
            raise ConfigError(str(err)) from None


def _check_values(cfg: RunConfig) -> None:
    """Range checks that types alone cannot express."""
    positive = {
        "simulation.n": cfg.simulation.n,
        "simulation.chunk_size": cfg.simulation.chunk_size,
        "inference.hidden_features": cfg.inference.hidden_features,
        "inference.num_transforms": cfg.inference.num_transforms,
        "inference.batch_size": cfg.inference.batch_size,
        "inference.stop_after_epochs": cfg.inference.stop_after_epochs,
        "inference.max_epochs": cfg.inference.max_epochs,
        "inference.threads": cfg.inference.threads,
        "inference.lr_patience": cfg.inference.lr_patience,
        "analysis.posterior_samples": cfg.analysis.posterior_samples,
        "analysis.predictive_samples": cfg.analysis.predictive_samples,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value!r}")
    non_negative = {
        "run.seed": cfg.run.seed,
        "anatomy.seed": cfg.anatomy.seed,
        "measurements.n_pairs": cfg.measurements.n_pairs,
        "analysis.sbc_runs": cfg.analysis.sbc_runs,
        "analysis.comparison_simulations": cfg.analysis.comparison_simulations,
        "analysis.sensitivity_simulations": cfg.analysis.sensitivity_simulations,
        "analysis.sensitivity_max_epochs": cfg.analysis.sensitivity_max_epochs,
        "analysis.sensitivity_rows": cfg.analysis.sensitivity_rows,
        "cluster.workers": cfg.cluster.workers,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value!r}")
    _check_cluster(cfg.cluster)
    if not cfg.inference.learning_rate > 0:
        raise ConfigError(
            f"inference.learning_rate must be > 0, got {cfg.inference.learning_rate!r}"
        )
    if not 0.0 < cfg.inference.validation_fraction < 1.0:
        raise ConfigError(
            f"inference.validation_fraction must lie in (0, 1), got "
            f"{cfg.inference.validation_fraction!r}"
        )
    inf = cfg.inference
    if not inf.learning_rate > 0 or inf.min_learning_rate < 0:
        raise ConfigError("inference.learning_rate must be > 0 and min_learning_rate >= 0")
    if not 0.0 < inf.lr_decay < 1.0:
        raise ConfigError(f"inference.lr_decay must lie in (0, 1), got {inf.lr_decay!r}")
    if not _valid_device(inf.device):
        raise ConfigError(
            f"inference.device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {inf.device!r}")
    if cfg.measurements.slice_thickness_um <= 0 or cfg.measurements.slice_max_distance_um <= 0:
        raise ConfigError("measurements.slice_thickness_um and slice_max_distance_um must be > 0")
    select = cfg.measurements.select
    for k, name in enumerate(select):
        if not name.strip() or any(c.isspace() for c in name):
            raise ConfigError(
                f"measurements.select[{k}] = {name!r} is not a measurement id or label"
            )
        if name in select[:k]:
            raise ConfigError(f"measurements.select names {name!r} twice")
    if cfg.measurements.set == "model" and not cfg.anatomy.path:
        raise ConfigError(
            "measurements.set = 'model' uses the measurement populations of an imported "
            "anatomy; set anatomy.path to its store (wiring anatomy import consbi ...)"
        )
    if not cfg.anatomy.path and not cfg.anatomy.preset:
        raise ConfigError("anatomy: set either preset or path")
    from wiring.errors import InvalidParameterError
    from wiring.simulation.nuisance import check_nuisance_names

    try:
        check_nuisance_names(cfg.anatomy.nuisance)
    except InvalidParameterError as err:
        raise ConfigError(f"anatomy.nuisance: {err}") from None


def _valid_device(device: str) -> bool:
    if device in ("cpu", "cuda", "auto"):
        return True
    head, _, index = device.partition(":")
    return head == "cuda" and index.isdigit()
