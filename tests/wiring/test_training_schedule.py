"""The NPE training loop's learning-rate schedule, stopping rules, stop reasons and devices."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from wiring.errors import InvalidParameterError  # noqa: E402
from wiring.inference import posterior_from_state, resolve_device, train_posterior  # noqa: E402
from wiring.inference._training import STOP_REASONS, Schedule  # noqa: E402
from wiring.inference.priors import PriorSpec  # noqa: E402

SPEC = PriorSpec(kind="gaussian", names=("a", "b"), loc=(1.0, 1.0), scale=(0.3, 0.3))
FAST: dict[str, Any] = dict(hidden_features=16, num_transforms=1, num_bins=4, progress=False,
                            num_threads=1, batch_size=200)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    theta = SPEC.sample(800, rng)
    x = np.column_stack([theta.sum(1), theta[:, 0] - theta[:, 1], theta[:, 0] * 0.5])
    return theta, x + 0.1 * rng.standard_normal(x.shape)


def _training(post: object) -> dict:  # type: ignore[type-arg]
    return post.manifest["training"]  # type: ignore[attr-defined,no-any-return]


def test_constant_schedule_keeps_the_step_size(data: tuple[np.ndarray, np.ndarray]) -> None:
    tr = _training(train_posterior(*data, SPEC, lr_schedule="constant", learning_rate=5e-4,
                                   stop_after_epochs=3, max_epochs=10, seed=1, **FAST))
    assert set(tr["learning_rates"]) == {5e-4}
    assert tr["stop_reason"] in ("patience", "max_epochs")
    assert len(tr["validation_loss"]) == len(tr["learning_rates"]) == tr["epochs"]
    if tr["stop_reason"] == "patience":  # the best epoch is exactly `patience` epochs back
        assert tr["epochs"] - tr["best_epoch"] == 3


def test_plateau_schedule_decays_after_lr_patience(data: tuple[np.ndarray, np.ndarray]) -> None:
    tr = _training(train_posterior(*data, SPEC, learning_rate=4e-3, lr_patience=2, lr_decay=0.5,
                                   stop_after_epochs=50, min_learning_rate=1.5e-3,
                                   max_epochs=200, seed=2, **FAST))
    lrs = np.array(tr["learning_rates"])
    val = np.array(tr["validation_loss"])
    steps = np.flatnonzero(np.diff(lrs) != 0)
    assert len(steps) >= 1 and np.allclose(lrs[steps + 1] / lrs[steps], 0.5)
    for k in steps:  # a decay follows lr_patience (or more) epochs without a new best
        assert k - int(np.argmin(val[: k + 1])) >= 2
    # patience of 50 never ends this run: the step size reaches the floor first
    assert tr["stop_reason"] == "lr_floor" and lrs[-1] * 0.5 < 1.5e-3 <= lrs[-1]
    assert tr["converged"] and "learning rate" in tr["stop_message"]
    assert tr["best_validation_loss"] == pytest.approx(val.min())


def test_epoch_cap_is_reported(data: tuple[np.ndarray, np.ndarray]) -> None:
    tr = _training(train_posterior(*data, SPEC, max_epochs=2, seed=0, **FAST))
    assert tr["epochs"] == 2 and tr["stop_reason"] == "max_epochs" and not tr["converged"]
    assert tr["stop_message"] == STOP_REASONS["max_epochs"].format(max_epochs=2)


def test_stop_reason_is_logged(data: tuple[np.ndarray, np.ndarray],
                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="wiring.inference.npe"):
        train_posterior(*data, SPEC, max_epochs=2, seed=0, **FAST)
    assert "stopped: epoch cap of 2 reached" in caplog.text


def test_schedule_is_seeded(data: tuple[np.ndarray, np.ndarray]) -> None:
    a = train_posterior(*data, SPEC, max_epochs=6, seed=5, **FAST)
    b = train_posterior(*data, SPEC, max_epochs=6, seed=5, **FAST)
    assert _training(a)["validation_loss"] == _training(b)["validation_loss"]
    x_o = data[1][0]
    np.testing.assert_array_equal(a.sample(50, x_o, seed=1), b.sample(50, x_o, seed=1))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"lr_schedule": "cosine"}, "lr_schedule"),
    ({"lr_decay": 1.5}, "lr_decay"),
    ({"lr_patience": 0}, "lr_patience"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"min_learning_rate": -1.0}, "min_learning_rate"),
])
def test_bad_schedules(kwargs: dict[str, object], match: str) -> None:
    base: dict[str, object] = {"learning_rate": 1e-3, "stop_after_epochs": 5, "max_epochs": 10}
    with pytest.raises(InvalidParameterError, match=match):
        Schedule(**{**base, **kwargs})  # type: ignore[arg-type]


def test_devices() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(InvalidParameterError, match="device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidParameterError, match="set device = 'cpu'"):
            resolve_device("cuda")
        with pytest.raises(InvalidParameterError, match="set device = 'cpu'"):
            resolve_device("cuda:1")


def test_training_records_its_device(data: tuple[np.ndarray, np.ndarray]) -> None:
    post = train_posterior(*data, SPEC, max_epochs=1, seed=0, device="auto", **FAST)
    assert _training(post)["device"] in ("cpu", "cuda")
    assert next(post.net.parameters()).device.type == "cpu"


def test_posterior_from_state_gives_the_same_numbers(
        data: tuple[np.ndarray, np.ndarray]) -> None:
    post = train_posterior(*data, SPEC, max_epochs=3, seed=0, **FAST)
    state = {k: v.clone() for k, v in post.net.state_dict().items()}
    again = posterior_from_state(post.manifest, state)
    x_o = data[1][3]
    np.testing.assert_array_equal(post.sample(100, x_o, seed=4), again.sample(100, x_o, seed=4))
    theta = data[0][:20]
    np.testing.assert_array_equal(post.log_prob(theta, x_o), again.log_prob(theta, x_o))
