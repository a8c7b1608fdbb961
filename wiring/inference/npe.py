"""Neural posterior estimation (NPE) with ``sbi`` and pickle-free posterior files.

This is the only module of the package that imports ``sbi``.

- :func:`build_prior` turns a :class:`wiring.inference.priors.PriorSpec` into an sbi-compatible torch
  distribution (``BoxUniform`` or ``MultivariateNormal``).
- :func:`train_posterior` fits an sbi density estimator (neural spline flow by default, as in
  Boelts et al. 2023) to (θ, x) pairs and returns a :class:`Posterior`. The estimator and the
  posterior object come from ``sbi`` (``posterior_nn``, ``DirectPosterior``); the training loop is
  the single-round NPE loop of ``sbi`` (Adam, gradient clipping at norm 5, a held-out validation
  fraction, early stopping on the validation loss, restoring the best weights) plus a plateau
  schedule of the learning rate, written out here
  so that it is seeded without touching global random state, shows a progress bar with the
  validation loss, and writes nothing to disk (``sbi``'s trainer logs to ``./sbi-logs``).
- :func:`save_posterior` / :func:`load_posterior`: a posterior is a directory with
  ``weights.pt`` (``torch.save`` of the estimator's ``state_dict``, which includes the z-scoring
  statistics) and ``manifest.json`` (everything needed to rebuild the network and to check that
  it is used with the right rule and measurements). Weights are loaded with
  ``torch.load(weights_only=True)`` after checking their sha256 against the manifest, so a
  tampered file is rejected and cannot execute code. No pickle is involved anywhere.

**CPU training defaults.** ``batch_size="auto"`` uses 1,000 rows per batch from 9,000 training
rows (a store of 10^4 simulations) on; for smaller sets a tenth of the rows, at least 200 (sbi's
default), so that every epoch still takes about ten gradient steps or more. Measured with ``benchmarks/bench_inference.py``
(NSF, θ ∈ R³, x ∈ R⁷, 9,000 training rows): batches of 1,000 cut the epoch time 2.9× and the
time to convergence 2.1× compared to 200, with the same held-out loss (−2.578 vs −2.576 nats)
and the same coverage of central 95 % intervals (0.937 for both, on 200 test simulations).
The network follows sbi's defaults (50 hidden units, 5 transforms, 10 % validation); the
step size does not: Adam starts at 2·10⁻³ and halves after 3 epochs without a better
validation loss, and training stops after 10 such epochs or once the step size falls below
5·10⁻⁵ (see :mod:`wiring.inference._training`). On the default run's problem this reaches
the held-out log density of sbi's constant 5·10⁻⁴ with patience 20 in a fraction of the
epochs (``benchmarks/bench_quality.py``); ``lr_schedule="constant"`` gives sbi's loop.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from anatomy.atomic import move_into_place
from anatomy.storeguard import refuse_foreign, remove_leftovers, store_lock
from wiring._json import json_native
from wiring._seal import changed_fields, decode_seal, encode_seal, field_digests
from wiring._typing import FloatArray
from wiring.errors import (
    InvalidParameterError,
    OutputExistsError,
    PosteriorFileError,
    PosteriorMismatchError,
    ShapeMismatchError,
    TrainingDataError,
    WiringWarning,
)
from wiring.inference._training import Schedule, fit_estimator, resolve_device
from wiring.inference.priors import PriorSpec

__all__ = [
    "ESTIMATORS",
    "MANIFEST_VERSION",
    "SEAL_KEY",
    "SUPPORTED_MANIFEST_VERSIONS",
    "Posterior",
    "PosteriorFileError",
    "TrainingDataError",
    "build_prior",
    "check_trained_for",
    "is_posterior_dir",
    "load_posterior",
    "posterior_from_state",
    "resolve_device",
    "save_posterior",
    "train_from_store",
    "train_posterior",
]

logger = logging.getLogger(__name__)

#: Density estimators of ``sbi.neural_nets.posterior_nn`` that can be trained and reloaded.
ESTIMATORS: tuple[str, ...] = ("nsf", "maf", "mdn", "made", "maf_rqs")
#: Training defaults (see the module docstring and :mod:`wiring.inference._training`).
DEFAULT_LEARNING_RATE = 2e-3
DEFAULT_STOP_AFTER_EPOCHS = 10
DEFAULT_LR_DECAY = 0.5
DEFAULT_LR_PATIENCE = 3
DEFAULT_MIN_LEARNING_RATE = 5e-5
#: Version of the posterior directory format (2: ``weights.pt`` seals the manifest).
MANIFEST_VERSION = 2
#: Versions this package loads (1: unsealed manifest, loaded with a warning).
SUPPORTED_MANIFEST_VERSIONS: frozenset[int] = frozenset({1, 2})
#: Key of the manifest seal inside ``weights.pt`` (a uint8 tensor, see :mod:`wiring._seal`).
SEAL_KEY = "_wiring_manifest_seal"
_FORMAT = "wiring-posterior"
_WEIGHTS = "weights.pt"
_MANIFEST = "manifest.json"
_VERSIONED = ("wiring-sbi", "sbi", "torch", "numpy", "zarr", "nflows", "zuko", "pyknos")


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed torch inside ``fork_rng`` so that the caller's global torch state is untouched."""
    import torch

    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(int(seed))
        yield


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Use ``n`` torch intra-op threads inside the block (None: leave as is)."""
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def build_prior(prior_spec: PriorSpec) -> Any:
    """The torch distribution of ``prior_spec``: sbi's ``BoxUniform``, a ``MultivariateNormal``
    with diagonal covariance ``scale²``, or for a truncated Gaussian an ``Independent``
    :class:`wiring.inference._torch_priors.TruncatedNormal` whose support is the truncation box (float32,
    event shape (d,))."""
    import torch
    from sbi.utils import BoxUniform

    if prior_spec.kind == "uniform":
        return BoxUniform(
            low=torch.tensor(prior_spec.low, dtype=torch.float32),
            high=torch.tensor(prior_spec.high, dtype=torch.float32),
        )
    scale = torch.tensor(prior_spec.scale, dtype=torch.float32)
    if prior_spec.truncated:
        from wiring.inference._torch_priors import TruncatedNormal

        return torch.distributions.Independent(
            TruncatedNormal(
                loc=torch.tensor(prior_spec.loc, dtype=torch.float32),
                scale=scale,
                low=torch.tensor(prior_spec.low, dtype=torch.float32),
                high=torch.tensor(prior_spec.high, dtype=torch.float32),
            ),
            1,
        )
    return torch.distributions.MultivariateNormal(
        loc=torch.tensor(prior_spec.loc, dtype=torch.float32),
        covariance_matrix=torch.diag(scale**2),
    )


def _auto_batch_size(n_train: int) -> int:
    """1000 from 9,000 training rows (a 10^4 store) on; below, a tenth of the rows, >= 200."""
    if n_train >= 9_000:
        return 1000
    return int(max(200, (n_train // 10) // 100 * 100))


def _build_net(settings: Mapping[str, Any], theta: Any, x: Any) -> Any:
    from sbi.neural_nets import posterior_nn

    kwargs: dict[str, Any] = {
        "model": settings["estimator"],
        "hidden_features": int(settings["hidden_features"]),
        "num_transforms": int(settings["num_transforms"]),
        "z_score_theta": settings["z_score_theta"],
        "z_score_x": settings["z_score_x"],
    }
    if settings["estimator"] in ("nsf", "maf_rqs"):
        kwargs["num_bins"] = int(settings["num_bins"])
    if settings["estimator"] == "mdn":
        kwargs["num_components"] = int(settings["num_components"])
    return posterior_nn(**kwargs)(theta, x)


def _versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


class Posterior:
    """An amortized posterior p(θ | x): condition it on any x_o without retraining.

    Wraps an sbi ``DirectPosterior`` and its manifest (rule, parameter and measurement names,
    prior, estimator settings, training summary, hashes, versions).

    Attributes
    ----------
    manifest : dict
        JSON-native description; saved as ``manifest.json``.
    """

    def __init__(self, net: Any, manifest: Mapping[str, Any]) -> None:
        from sbi.inference.posteriors import DirectPosterior

        self._net = net.eval()
        self.manifest: dict[str, Any] = copy.deepcopy(dict(manifest))
        self.prior_spec = PriorSpec.from_dict(self.manifest["prior"])
        self.prior = build_prior(self.prior_spec)
        self._posterior = DirectPosterior(posterior_estimator=self._net, prior=self.prior)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the parameters (columns of θ)."""
        return tuple(self.manifest["param_names"])

    @property
    def measurement_names(self) -> tuple[str, ...]:
        """Names of the measurements (entries of x_o)."""
        return tuple(self.manifest["measurement_names"])

    @property
    def net(self) -> Any:
        """The trained sbi density estimator (a ``torch.nn.Module``)."""
        return self._net

    @property
    def sbi_posterior(self) -> Any:
        """The wrapped ``sbi`` ``DirectPosterior`` (for ``sbi.analysis`` / diagnostics)."""
        return self._posterior

    def check_x_o(self, x_o: npt.ArrayLike) -> FloatArray:
        """``x_o`` as a float64 vector (m,); raise on a wrong length or non-finite values."""
        names = self.measurement_names
        arr = np.asarray(x_o, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.shape != (len(names),):
            raise ShapeMismatchError(
                f"x_o has shape {np.shape(x_o)} but this posterior was trained on "
                f"{len(names)} measurement(s) {list(names)}; expected shape ({len(names)},)"
            )
        bad = ~np.isfinite(arr)
        if bad.any():
            which = [f"{names[k]}={float(arr[k])!r}" for k in np.flatnonzero(bad)]
            raise InvalidParameterError(
                f"x_o must be finite; got {', '.join(which)}. Drop or impute those measurements "
                f"and train a posterior on the remaining ones"
            )
        return arr

    def _theta(self, theta: npt.ArrayLike) -> FloatArray:
        arr = np.asarray(theta, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None, :]
        d = len(self.param_names)
        if arr.ndim != 2 or arr.shape[1] != d:
            raise ShapeMismatchError(
                f"theta has shape {np.shape(theta)}; expected (d,) or (batch, d) with d = {d} "
                f"parameters {list(self.param_names)}"
            )
        return arr

    def sample(self, n: int, x_o: npt.ArrayLike, *, seed: int | None = 0,
               progress: bool = False) -> FloatArray:
        """Draw ``n`` samples of θ given ``x_o``; shape (n, d) float64.

        Samples outside the prior's support (bounded priors) are rejected and redrawn, as in
        sbi. The same ``seed`` gives the same samples; torch's global random state is untouched.
        """
        import torch

        x = self.check_x_o(x_o)
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise InvalidParameterError(f"number of samples must be an integer >= 0, got {n!r}")
        with _seeded(seed), torch.no_grad():
            out = self._posterior.sample(
                (int(n),), x=torch.as_tensor(x, dtype=torch.float32)[None, :],
                show_progress_bars=progress,
            )
        return np.asarray(out.numpy(), dtype=np.float64).reshape(int(n), -1)

    def log_prob(self, theta: npt.ArrayLike, x_o: npt.ArrayLike, *,
                 normalize: bool = False, seed: int | None = 0) -> FloatArray:
        """Log posterior density of each row of ``theta`` given ``x_o``; shape (batch,).

        By default (``normalize=False``) this is the density estimator's log density, set to
        ``-inf`` outside the prior's support and *not* corrected for the mass the flow leaks
        outside a bounded prior (for a Gaussian prior there is no leakage, so it is normalized).
        ``normalize=True`` applies sbi's leakage correction, which estimates the leaked mass by
        sampling (random, seeded with ``seed``, and slow when much mass leaks).
        """
        import torch

        x = self.check_x_o(x_o)
        th = self._theta(theta)
        with _seeded(seed), torch.no_grad():
            out = self._posterior.log_prob(
                torch.as_tensor(th, dtype=torch.float32),
                x=torch.as_tensor(x, dtype=torch.float32)[None, :],
                norm_posterior=normalize,
            )
        return np.asarray(out.numpy(), dtype=np.float64).reshape(-1)

    def __repr__(self) -> str:
        est = self.manifest.get("estimator", {}).get("estimator")
        return (f"Posterior(rule={self.manifest.get('rule', {}).get('name')!r}, "
                f"params={list(self.param_names)}, measurements={len(self.measurement_names)}, "
                f"estimator={est!r})")


def _check_training_data(theta: npt.ArrayLike, x: npt.ArrayLike, prior_spec: PriorSpec,
                         measurement_names: Sequence[str] | None) -> tuple[FloatArray, FloatArray, int]:
    th = np.asarray(theta, dtype=np.float64)
    xx = np.asarray(x, dtype=np.float64)
    if th.ndim != 2 or th.shape[1] != prior_spec.d:
        raise ShapeMismatchError(
            f"theta has shape {th.shape}; expected (n, {prior_spec.d}) for the prior's "
            f"parameters {list(prior_spec.names)}"
        )
    if xx.ndim != 2 or xx.shape[0] != th.shape[0]:
        raise ShapeMismatchError(
            f"x has shape {xx.shape}; expected (n, m) with n = {th.shape[0]} rows like theta"
        )
    if measurement_names is not None and xx.shape[1] != len(measurement_names):
        raise ShapeMismatchError(
            f"x has {xx.shape[1]} column(s) but {len(measurement_names)} measurement names "
            f"were given"
        )
    if th.shape[0] == 0:
        raise TrainingDataError("no training data: theta and x have 0 rows; simulate first")
    ok = np.all(np.isfinite(xx), axis=1) & np.all(np.isfinite(th), axis=1)
    dropped = int((~ok).sum())
    if dropped:
        logger.info("dropping %d of %d simulations with NaN/inf x (or θ) before training",
                    dropped, len(ok))
    th, xx = th[ok], xx[ok]
    if len(th) < 10:
        raise TrainingDataError(
            f"only {len(th)} of {len(ok)} simulations have finite x; need at least 10 to "
            f"train. Check the simulator and the prior (all-NaN x usually means θ outside the "
            f"rule's domain)"
        )
    return th, xx, dropped


def train_posterior(
    theta: npt.ArrayLike,
    x: npt.ArrayLike,
    prior_spec: PriorSpec,
    *,
    estimator: str = "nsf",
    hidden_features: int = 50,
    num_transforms: int = 5,
    num_bins: int = 10,
    num_components: int = 10,
    batch_size: int | str = "auto",
    learning_rate: float = DEFAULT_LEARNING_RATE,
    validation_fraction: float = 0.1,
    stop_after_epochs: int = DEFAULT_STOP_AFTER_EPOCHS,
    max_epochs: int = 1000,
    lr_schedule: str = "plateau",
    lr_decay: float = DEFAULT_LR_DECAY,
    lr_patience: int = DEFAULT_LR_PATIENCE,
    min_learning_rate: float = DEFAULT_MIN_LEARNING_RATE,
    clip_max_norm: float | None = 5.0,
    seed: int = 0,
    progress: bool = True,
    num_threads: int | None = None,
    device: str = "cpu",
    metadata: Mapping[str, Any] | None = None,
) -> Posterior:
    """Train NPE on simulations and return the amortized :class:`Posterior`.

    Parameters
    ----------
    theta : array (n, d)
        Parameters drawn from ``prior_spec``.
    x : array (n, m)
        Simulated measurements; rows with NaN/inf are dropped (the count is logged at INFO).
    prior_spec : PriorSpec
        The prior θ was drawn from (the posterior's support).
    estimator : str
        One of :data:`ESTIMATORS`; default ``"nsf"`` (neural spline flow).
    hidden_features, num_transforms, num_bins, num_components : int
        Network size (sbi's ``posterior_nn`` arguments; ``num_bins`` for spline flows,
        ``num_components`` for ``mdn``).
    batch_size : int or "auto"
        Training batch size; ``"auto"``: 1,000 from 9,000 training rows on, else a tenth of the
        rows but at least 200 (see the module docstring for the measurements behind it).
    learning_rate, validation_fraction, stop_after_epochs, max_epochs, clip_max_norm
        Initial Adam step size, held-out fraction, early-stopping patience (epochs without a
        better validation loss), epoch cap and gradient-norm clip.
    lr_schedule, lr_decay, lr_patience, min_learning_rate
        ``"plateau"`` (default): multiply the step size by ``lr_decay`` after ``lr_patience``
        epochs without a better validation loss and stop once it falls below
        ``min_learning_rate``; ``"constant"``: a fixed step size (sbi's loop; with
        ``learning_rate=5e-4, stop_after_epochs=20`` the defaults before 0.1.0). Why training
        stopped is recorded as ``training.stop_reason`` (``patience``, ``lr_floor`` or
        ``max_epochs``).
    seed : int
        Seeds the split, the batch order and the network initialisation.
    progress : bool
        Show a progress bar with training and validation loss per epoch.
    num_threads : int, optional
        torch threads while training (restored afterwards); None keeps torch's setting. On a
        machine shared with other busy processes, 1 avoids the large slowdown of
        oversubscribed OpenMP threads.
    device : str
        Where the network trains: ``"cpu"`` (default), ``"cuda"``/``"cuda:N"``, or ``"auto"``
        (CUDA when torch sees a GPU, else the CPU; the choice is logged). Asking for CUDA
        without a usable GPU raises :class:`InvalidParameterError`. The returned posterior is
        on the CPU either way; ``training.device`` records where it was trained (GPU results
        differ from CPU ones in the last bits, so the same seed reproduces per device).
    metadata : mapping, optional
        Extra manifest entries: ``rule`` (provenance), ``param_specs``, ``measurement_names``,
        ``measurement_hash``, ``anatomy_hash``, ``store_hash``, ...

    Raises
    ------
    TrainingDataError
        Fewer than 10 valid simulations.
    ShapeMismatchError, InvalidParameterError
        Inconsistent shapes or settings.
    """
    import torch

    meta = dict(metadata or {})
    names = meta.get("measurement_names")
    th, xx, dropped = _check_training_data(theta, x, prior_spec, names)
    if estimator not in ESTIMATORS:
        raise InvalidParameterError(
            f"estimator {estimator!r} is not supported; use one of {list(ESTIMATORS)}"
        )
    if not 0.0 < validation_fraction < 1.0:
        raise InvalidParameterError(
            f"validation_fraction must be in (0, 1), got {validation_fraction!r}"
        )
    schedule = Schedule(learning_rate=float(learning_rate),
                        stop_after_epochs=stop_after_epochs, max_epochs=max_epochs,
                        lr_schedule=lr_schedule, lr_decay=float(lr_decay),
                        lr_patience=lr_patience, min_learning_rate=float(min_learning_rate),
                        clip_max_norm=clip_max_norm)
    n_val = max(1, round(validation_fraction * len(th)))
    n_train = len(th) - n_val
    bs = _auto_batch_size(n_train) if batch_size == "auto" else batch_size
    if isinstance(bs, bool) or not isinstance(bs, int | np.integer) or bs < 1:
        raise InvalidParameterError(f"batch_size must be a positive integer or 'auto', got {bs!r}")
    bs = int(min(bs, n_train))
    settings: dict[str, Any] = {
        "estimator": estimator, "hidden_features": int(hidden_features),
        "num_transforms": int(num_transforms), "num_bins": int(num_bins),
        "num_components": int(num_components), "z_score_theta": "independent",
        "z_score_x": "independent", "theta_dim": int(th.shape[1]), "x_dim": int(xx.shape[1]),
    }
    training: dict[str, Any] = {
        "batch_size": bs, "validation_fraction": float(validation_fraction),
        **schedule.to_dict(), "seed": int(seed),
        "n_simulations": int(len(th) + dropped), "n_dropped_invalid": dropped,
        "n_train": n_train, "n_validation": n_val,
    }
    perm = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))).permutation(len(th))
    t_all = torch.as_tensor(th[perm], dtype=torch.float32)
    x_all = torch.as_tensor(xx[perm], dtype=torch.float32)
    dev = resolve_device(device)
    training["device"] = str(dev)
    start = time.perf_counter()
    with _seeded(seed), _threads(num_threads):
        net = _build_net(settings, t_all[:n_train], x_all[:n_train]).to(dev)
        data = (t_all[:n_train].to(dev), x_all[:n_train].to(dev), t_all[n_train:].to(dev),
                x_all[n_train:].to(dev))
        outcome = fit_estimator(net, data, schedule, batch_size=bs,
                                generator=torch.Generator().manual_seed(int(seed)),
                                progress=progress, desc=f"training {estimator} ({dev})")
        net = net.to("cpu")
    best = outcome.best_validation_loss
    training.update({
        "epochs": outcome.epochs, "best_epoch": outcome.best_epoch,
        "best_validation_loss": best, "stop_reason": outcome.stop_reason,
        "stop_message": schedule.stop_message(outcome.stop_reason),
        "converged": outcome.stop_reason != "max_epochs",
        "wall_s": time.perf_counter() - start, **outcome.history,
    })
    if not math.isfinite(best):
        raise TrainingDataError(
            "training diverged: the validation loss never became finite; check x for extreme "
            "values or lower the learning rate"
        )
    logger.info("trained %s on %d simulations: %d epochs, best validation loss %.4f at epoch "
                "%d; stopped: %s", estimator, n_train, outcome.epochs, best, outcome.best_epoch,
                training["stop_message"])
    manifest: dict[str, Any] = {
        "format": _FORMAT, "schema_version": MANIFEST_VERSION,
        "rule": dict(meta.pop("rule", {})),
        "param_names": list(prior_spec.names),
        "measurement_names": list(names) if names is not None
        else [f"x{k}" for k in range(xx.shape[1])],
        "prior": prior_spec.to_dict(), "estimator": settings, "training": training,
        "versions": _versions(),
    }
    meta.pop("measurement_names", None)
    manifest.update(meta)
    return Posterior(net, json_native(manifest, what="manifest entry"))


def train_from_store(store: Any, **kwargs: Any) -> Posterior:
    """Train on the finished rows of a :class:`wiring.simulation.store.SimulationStore`.

    The arrays are loaded into memory (10^6 simulations × 10 columns are 80 MB). The manifest
    records the store's rule, measurements, hashes and its content hash. ``kwargs`` go to
    :func:`train_posterior`.

    Raises
    ------
    TrainingDataError
        The store has no finished simulations, or none with finite x.
    """
    theta, x = store.load()
    if len(theta) == 0:
        raise TrainingDataError(
            f"simulation store {str(store.path)!r} has no finished simulations; run "
            f"`wiring simulate` on it first"
        )
    meta = {
        "rule": store.rule_info, "measurement_names": list(store.measurement_names),
        "measurement_hash": store.measurement_hash, "anatomy_hash": store.anatomy_hash,
        "store_hash": store.content_hash(), "store_seed": store.seed,
        "protocol": store.attrs.get("protocol"),
        **dict(kwargs.pop("metadata", None) or {}),
    }
    return train_posterior(theta, x, store.prior_spec, metadata=meta, **kwargs)


def save_posterior(posterior: Posterior, path: str | os.PathLike[str], *,
                   overwrite: bool = False) -> Path:
    """Write ``posterior`` to directory ``path`` (``weights.pt`` + ``manifest.json``), atomically.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is false, or it is not a posterior directory.
    StoreLockedError
        Another process is writing ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with store_lock(path, what="posterior directory"):
        remove_leftovers(path)
        _save(posterior, path, overwrite=overwrite)
    logger.info("saved posterior to %s", path)
    return path


def is_posterior_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an empty folder or a posterior directory of this package (the only
    folders :func:`save_posterior` may replace)."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return False
    if not any(path.iterdir()):
        return True
    try:
        manifest = json.loads((path / _MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == _FORMAT


def _save(posterior: Posterior, path: Path, *, overwrite: bool) -> None:
    import torch

    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputExistsError(
                f"{str(path)!r} already exists; pass overwrite=True (--overwrite) to replace it"
            )
        if not is_posterior_dir(path):
            raise refuse_foreign(path, "a posterior directory", OutputExistsError)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in posterior.net.state_dict().items()}
        manifest = dict(posterior.manifest)
        manifest.pop("weights_sha256", None)
        manifest["schema_version"] = MANIFEST_VERSION
        # the weights vouch for every manifest field, the manifest for the weights' bytes
        state[SEAL_KEY] = torch.from_numpy(encode_seal(field_digests(_sealed_view(manifest))))
        torch.save(state, tmp / _WEIGHTS)
        manifest["weights_sha256"] = _sha256(tmp / _WEIGHTS)
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2, allow_nan=True) + "\n")
        move_into_place(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    posterior.manifest["weights_sha256"] = manifest["weights_sha256"]
    posterior.manifest["schema_version"] = MANIFEST_VERSION


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_posterior(path: str | os.PathLike[str], *, rule: Any = None,
                   measurement_names: Sequence[str] | None = None) -> Posterior:
    """Load a posterior directory written by :func:`save_posterior`.

    Parameters
    ----------
    path : path-like
        The posterior directory.
    rule : WiringRule or str, optional
        If given, the posterior must have been trained for this rule (name and parameters).
    measurement_names : sequence of str, optional
        If given, the posterior must have been trained on exactly these measurements, in order.

    Raises
    ------
    FileNotFoundError
        No such directory.
    PosteriorFileError
        Missing/malformed manifest or weights, a checksum mismatch, or weights that are not a
        plain tensor state dict (e.g. a pickle carrying code: it is refused, never executed).
    PosteriorMismatchError
        Trained for another rule or other measurements.
    """
    import torch

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no posterior directory at {str(path)!r}")
    try:
        manifest = json.loads((path / _MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PosteriorFileError(
            f"posterior {str(path)!r}: cannot read {_MANIFEST} ({err})"
        ) from err
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise PosteriorFileError(f"{str(path)!r} is not a posterior directory (bad manifest)")
    version = manifest.get("schema_version")
    if isinstance(version, bool) or version not in SUPPORTED_MANIFEST_VERSIONS:
        raise PosteriorFileError(
            f"posterior {str(path)!r} has format version {version!r}; this version reads "
            f"{sorted(SUPPORTED_MANIFEST_VERSIONS)}; retrain it with `wiring train`"
        )
    weights = path / _WEIGHTS
    if not weights.is_file():
        raise PosteriorFileError(f"posterior {str(path)!r}: {_WEIGHTS} is missing")
    if _sha256(weights) != manifest.get("weights_sha256"):
        raise PosteriorFileError(
            f"posterior {str(path)!r}: {_WEIGHTS} does not match the checksum in {_MANIFEST}; "
            f"the file was modified or replaced. Do not use it; retrain or restore the original"
        )
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError/RuntimeError for disallowed content
        raise PosteriorFileError(
            f"posterior {str(path)!r}: {_WEIGHTS} is not a plain tensor state dict and was "
            f"refused without running it ({type(err).__name__}); retrain or restore the original"
        ) from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PosteriorFileError(f"posterior {str(path)!r}: {_WEIGHTS} is not a state dict")
    _check_seal(manifest, state.pop(SEAL_KEY, None), path)
    check_trained_for(manifest, path, rule, measurement_names)
    try:
        return posterior_from_state(manifest, state)
    except RuntimeError as err:
        raise PosteriorFileError(
            f"posterior {str(path)!r}: weights do not fit the network described in the "
            f"manifest ({err})"
        ) from err


def posterior_from_state(manifest: Mapping[str, Any], state: Mapping[str, Any]) -> Posterior:
    """Rebuild a :class:`Posterior` from its manifest and the network's state dict (tensors).

    The same numbers as the posterior the state came from: ``load_posterior`` uses it after
    checking the file, and the pipeline uses it to bring posteriors trained in dask worker
    processes back as plain tensors. Raises ``RuntimeError`` when the state does not fit.
    """
    import torch

    settings = manifest["estimator"]
    with _seeded(0):
        dummy_t = torch.randn(16, int(settings["theta_dim"]))
        dummy_x = torch.randn(16, int(settings["x_dim"]))
        net = _build_net(settings, dummy_t, dummy_x)
    net.load_state_dict(dict(state))
    return Posterior(net, manifest)


#: Training entries that differ between identical runs (timings): not sealed, so that the same
#: training gives a bit-identical ``weights.pt``.
_UNSEALED_TRAINING = ("wall_s", "epoch_s")


def _sealed_view(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest fields the weights seal: all but ``weights_sha256`` and the timings."""
    view = {k: v for k, v in manifest.items() if k != "weights_sha256"}
    if isinstance(view.get("training"), dict):
        view["training"] = {k: v for k, v in view["training"].items()
                            if k not in _UNSEALED_TRAINING}
    return view


def _check_seal(manifest: Mapping[str, Any], seal: Any, path: Path) -> None:
    """Refuse a manifest that differs from the digest sealed into the weights (naming the
    field); warn for a posterior written before manifests were sealed."""
    if manifest.get("schema_version") == 1 and seal is None:
        warnings.warn(
            f"posterior {str(path)!r} was written by an older version whose manifest is not "
            f"sealed by its weights, so edits of manifest.json cannot be detected; retrain it "
            f"with `wiring train` to get a sealed one",
            WiringWarning, stacklevel=3,
        )
        logger.warning("posterior %s: manifest not sealed (format version 1); retrain to seal",
                       path)
        return
    digests = decode_seal(seal.numpy()) if seal is not None else None
    if digests is None:
        raise PosteriorFileError(
            f"posterior {str(path)!r}: {_WEIGHTS} carries no readable seal of {_MANIFEST}; the "
            f"files do not belong together. Retrain it or restore the original"
        )
    changed = changed_fields(digests, _sealed_view(manifest))
    if changed:
        raise PosteriorFileError(
            f"posterior {str(path)!r}: {_MANIFEST} field {changed[0]!r} was changed after "
            f"training (it no longer matches the seal in {_WEIGHTS}"
            f"{'; also ' + ', '.join(map(repr, changed[1:])) if changed[1:] else ''}); the "
            f"posterior was not trained with these values. Restore the original or retrain"
        )


def check_trained_for(manifest: Mapping[str, Any], path: str | os.PathLike[str], rule: Any = None,
                      measurement_names: Sequence[str] | None = None) -> None:
    """Raise :class:`PosteriorMismatchError` unless the posterior at ``path`` (its ``manifest``)
    was trained for ``rule`` and on ``measurement_names`` (each checked when given)."""
    if rule is not None:
        name = rule if isinstance(rule, str) else rule.name
        have = manifest.get("rule", {}).get("name")
        if have != name:
            raise PosteriorMismatchError(
                f"posterior {str(path)!r} was trained for rule {have!r}, not {name!r}; train a "
                f"posterior for {name!r} with `wiring train`"
            )
        if not isinstance(rule, str):
            params = [p.name for p in rule.params]
            if params != list(manifest.get("param_names", [])):
                raise PosteriorMismatchError(
                    f"posterior {str(path)!r} has parameters {manifest.get('param_names')} but "
                    f"rule {name!r} has {params}; retrain it for this rule version"
                )
    if measurement_names is not None:
        have_m = list(manifest.get("measurement_names", []))
        want = [str(s) for s in measurement_names]
        if have_m != want:
            missing = [s for s in want if s not in have_m]
            extra = [s for s in have_m if s not in want]
            raise PosteriorMismatchError(
                f"posterior {str(path)!r} was trained on measurements {have_m}, not {want} "
                f"(missing {missing}, unexpected {extra}); train a posterior on this "
                f"measurement set"
            )
