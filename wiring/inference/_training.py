"""The seeded NPE training loop: Adam, a learning-rate schedule, early stopping and why it stopped.

The loop is sbi's single-round NPE loop (Adam, gradient clipping, a held-out validation set,
early stopping on the validation loss, the best weights restored at the end) with one addition:
a **plateau schedule** of the learning rate. Training starts with a step size several times
sbi's default (5·10⁻⁴) and multiplies it by ``lr_decay`` whenever the validation loss has not
improved for ``lr_patience`` epochs; it stops when the validation loss has not improved for
``stop_after_epochs`` epochs, when the step size has decayed below ``min_learning_rate``
(further epochs could only change the weights by tiny steps), or at ``max_epochs``. A large step
size covers the early, easy part of the fit in few epochs, the decays then settle the network
into the minimum that a small constant step size reaches only after many more epochs; the
benchmark ``benchmarks/bench_quality.py`` measures both on a fixed held-out set.
``lr_schedule="constant"`` is the previous loop exactly (no decay, stop on patience or cap).

Why training stopped is one of :data:`STOP_REASONS` and is logged and recorded in the
posterior manifest (``training.stop_reason``).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from wiring.errors import InvalidParameterError

__all__ = ["STOP_REASONS", "Schedule", "TrainingOutcome", "fit_estimator", "resolve_device"]

logger = logging.getLogger(__name__)

#: Why a training loop stopped, with the sentence the log and ``wiring train`` print.
STOP_REASONS: dict[str, str] = {
    "patience": "no better validation loss for {patience} epochs",
    "lr_floor": "learning rate decayed below {min_lr:.2g} (plateau schedule)",
    "max_epochs": "epoch cap of {max_epochs} reached before convergence",
}

#: Learning-rate schedules of :class:`Schedule`.
LR_SCHEDULES: tuple[str, ...] = ("plateau", "constant")


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """Step size, its decay and the stopping rules of one training run."""

    learning_rate: float
    stop_after_epochs: int
    max_epochs: int
    lr_schedule: str = "plateau"
    lr_decay: float = 0.5
    lr_patience: int = 4
    min_learning_rate: float = 5e-5
    clip_max_norm: float | None = 5.0

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise InvalidParameterError(
                f"lr_schedule {self.lr_schedule!r} is not known; use one of {list(LR_SCHEDULES)}"
            )
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise InvalidParameterError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0.0 < self.lr_decay < 1.0:
            raise InvalidParameterError(f"lr_decay must lie in (0, 1), got {self.lr_decay!r}")
        for name in ("stop_after_epochs", "max_epochs", "lr_patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}")
        if not self.min_learning_rate >= 0:
            raise InvalidParameterError(
                f"min_learning_rate must be >= 0, got {self.min_learning_rate!r}")

    def stop_message(self, reason: str) -> str:
        """The sentence for ``reason`` (see :data:`STOP_REASONS`)."""
        return STOP_REASONS[reason].format(patience=self.stop_after_epochs,
                                           min_lr=self.min_learning_rate,
                                           max_epochs=self.max_epochs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-native settings (recorded in the manifest)."""
        return {"learning_rate": float(self.learning_rate),
                "stop_after_epochs": int(self.stop_after_epochs),
                "max_epochs": int(self.max_epochs), "lr_schedule": self.lr_schedule,
                "lr_decay": float(self.lr_decay), "lr_patience": int(self.lr_patience),
                "min_learning_rate": float(self.min_learning_rate),
                "clip_max_norm": self.clip_max_norm}


@dataclass
class TrainingOutcome:
    """What :func:`fit_estimator` reports: epochs, best validation loss, why it stopped and
    the per-epoch history (train and validation loss, step size, seconds)."""

    epochs: int = 0
    best_validation_loss: float = math.inf
    best_epoch: int = 0
    stop_reason: str = "max_epochs"
    history: dict[str, list[float]] = field(default_factory=lambda: {
        "train_loss": [], "validation_loss": [], "learning_rates": [], "epoch_s": []})


def fit_estimator(net: Any, data: tuple[Any, Any, Any, Any], schedule: Schedule, *,
                  batch_size: int, generator: Any, progress: bool, desc: str) -> TrainingOutcome:
    """Train ``net`` (an sbi density estimator with ``.loss(theta, x)``) in place.

    ``data`` is (θ train, x train, θ validation, x validation) as float32 tensors;
    ``generator`` (a seeded ``torch.Generator``) orders the batches. The best weights (lowest
    validation loss) are loaded into ``net`` at the end. Progress: a bar with the epoch count,
    the train and validation loss, the best loss and the step size; every epoch at DEBUG.
    """
    import torch
    from tqdm.auto import tqdm

    t_tr, x_tr, t_va, x_va = data
    n_train, n_val = len(t_tr), len(t_va)
    opt = torch.optim.Adam(net.parameters(), lr=schedule.learning_rate)
    lr = float(schedule.learning_rate)
    out = TrainingOutcome()
    best_state = copy.deepcopy(net.state_dict())
    since_best = since_decay = 0
    # no total: early stopping usually ends training long before max_epochs, so an ETA
    # computed from it would overstate the time left
    bar = tqdm(total=None, unit="epoch", desc=desc, disable=not progress, dynamic_ncols=True)
    try:
        while True:
            if out.epochs >= schedule.max_epochs:
                out.stop_reason = "max_epochs"
                break
            if since_best >= schedule.stop_after_epochs:
                out.stop_reason = "patience"
                break
            if schedule.lr_schedule == "plateau" and lr < schedule.min_learning_rate:
                out.stop_reason = "lr_floor"
                break
            t0 = time.perf_counter()
            train_loss = _train_epoch(net, opt, t_tr, x_tr, batch_size, generator,
                                      schedule.clip_max_norm)
            val = _validation_loss(net, t_va, x_va, n_val)
            out.epochs += 1
            h = out.history
            h["train_loss"].append(train_loss / n_train)
            h["validation_loss"].append(val)
            h["learning_rates"].append(lr)
            h["epoch_s"].append(time.perf_counter() - t0)
            if val < out.best_validation_loss:
                out.best_validation_loss, out.best_epoch = val, out.epochs
                since_best = since_decay = 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                since_best += 1
                since_decay += 1
            if schedule.lr_schedule == "plateau" and since_decay >= schedule.lr_patience:
                lr *= schedule.lr_decay
                since_decay = 0
                for group in opt.param_groups:
                    group["lr"] = lr
            bar.update(1)
            bar.set_postfix(train=f"{train_loss / n_train:.4f}", val=f"{val:.4f}",
                            best=f"{out.best_validation_loss:.4f}", lr=f"{lr:.1e}")
            logger.debug("epoch %d: train loss %.5f, validation loss %.5f, lr %.2e",
                         out.epochs, train_loss / n_train, val, h["learning_rates"][-1])
    finally:
        bar.close()
    net.load_state_dict(best_state)
    return out


def _train_epoch(net: Any, opt: Any, t_tr: Any, x_tr: Any, batch_size: int, generator: Any,
                 clip_max_norm: float | None) -> float:
    """One pass over the training rows in a seeded random order; the summed loss."""
    import torch

    net.train()
    n_train = len(t_tr)
    order = torch.randperm(n_train, generator=generator)
    total = 0.0
    for b in range(0, n_train, batch_size):
        idx = order[b:b + batch_size].to(t_tr.device)
        opt.zero_grad()
        loss = net.loss(t_tr[idx], x_tr[idx]).mean()
        loss.backward()
        if clip_max_norm is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=clip_max_norm)
        opt.step()
        total += float(loss.detach()) * len(idx)
    return total


def _validation_loss(net: Any, t_va: Any, x_va: Any, n_val: int) -> float:
    """Mean loss (negative log density) on the validation rows."""
    import torch

    net.eval()
    with torch.no_grad():
        val = 0.0
        for b in range(0, n_val, 10_000):
            val += float(net.loss(t_va[b:b + 10_000], x_va[b:b + 10_000]).sum())
    return val / n_val


def resolve_device(device: str) -> Any:
    """The ``torch.device`` for ``device`` (``cpu``, ``cuda``, ``cuda:N`` or ``auto``).

    Raises
    ------
    InvalidParameterError
        An unknown name, or CUDA asked for where torch sees no usable GPU (a CPU-only torch
        build, no driver, or an index beyond the devices present).
    """
    import torch

    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
        logger.info("training device 'auto': using %s", name)
    head, _, index = name.partition(":")
    if name != "cpu" and not (head == "cuda" and (index == "" or index.isdigit())):
        raise InvalidParameterError(
            f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
    if head == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else (
                f"built for CUDA {torch.version.cuda}, but no GPU or driver is usable")
            raise InvalidParameterError(
                f"device {device!r}: torch {torch.__version__} is {build}; set device = 'cpu' "
                f"(or 'auto' to use a GPU only where there is one)")
        if index and int(index) >= torch.cuda.device_count():
            raise InvalidParameterError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return torch.device(name)
