"""The command line's error contract under faults and hostile input.

Every failure is one line on stderr and exit status 1 (``--debug``: the traceback), nothing the
user had is lost or overwritten, and an exception nobody anticipated is one line saying
"internal error" with exit status 3. Covered here: a full disk (ENOSPC / EDQUOT) in build,
simulate, train, analyze and connectome; a plugin rule whose ``rate`` raises or returns
negative or NaN rates (simulate, connectome); a non-finite learning rate; a damaged simulation
chunk; sizes that cannot fit; and an unexpected exception.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli import EXIT_INTERNAL, EXIT_USER, main
from wiring.rules import registry
from wiring.rules.registry import refresh_rules

PLUGINS = '''
import numpy as np
from wiring.rules.base import ParamSpec

class RaisingRate:
    """rate() raises inside the plugin's own code."""
    name = "raising_rate"
    params = (ParamSpec(name="theta", default=1.0, low=0.5, high=2.0, doc="scale"),)
    level = "voxel"
    features = ("log_pre",)
    synapses = "poisson"
    def rate(self, features, theta):
        raise ZeroDivisionError("the plugin divided by zero")

class NegativeRate(RaisingRate):
    """Negative expected counts (rules check rejects it; a run must too)."""
    name = "negative_rate"
    def rate(self, features, theta):
        return -theta[0] * np.exp(features["log_pre"])

class NanRate(RaisingRate):
    """NaN expected counts inside the plausible range."""
    name = "nan_rate"
    def rate(self, features, theta):
        return np.full(np.broadcast_shapes(theta[0].shape, features["log_pre"].shape), np.nan)
'''


def one_line_error(err: str) -> str:
    """The single stderr line of a failed command (asserting there is exactly one)."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("wiring: "), err
    assert "Traceback" not in err
    return lines[0]


def listing(folder: Path) -> dict[str, int]:
    """Every file below ``folder`` with its size (what the user has on disk)."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "cli_error_rules.py").write_text(PLUGINS)
    monkeypatch.syspath_prepend(str(folder))
    eps = [
        metadata.EntryPoint(name=n, value=f"cli_error_rules:{c}", group="wiring.rules")
        for n, c in (("raising_rate", "RaisingRate"), ("negative_rate", "NegativeRate"),
                     ("nan_rate", "NanRate"))
    ]
    monkeypatch.setattr(registry, "_entry_points", lambda: eps)
    refresh_rules()
    yield
    refresh_rules()
    sys.modules.pop("cli_error_rules", None)


def disk_full(monkeypatch: pytest.MonkeyPatch, code: int = errno.ENOSPC) -> None:
    """Make every zarr chunk write fail as a full disk does (metadata still fits)."""
    import zarr.storage._local as local

    real = local._put

    def put(path: Path, value: Any, exclusive: bool = False) -> int:
        if Path(path).name != "zarr.json":
            raise OSError(code, os.strerror(code))
        return int(real(path, value, exclusive=exclusive))

    monkeypatch.setattr(local, "_put", put)


def simulate_args(anatomy: Path | str, out: Path, *extra: str, rule: str = "dso",
                  n: str = "200") -> list[str]:
    return ["simulate", "--anatomy", str(anatomy), "--rule", rule, "--measurements",
            "vpm-invivo", "--n", n, "--chunk-size", "100", "--seed", "3", "--out", str(out),
            "--no-progress", *extra]


TRAIN_FAST = ["--max-epochs", "2", "--num-transforms", "1", "--hidden-features", "16",
              "--threads", "1", "--no-progress", "--estimator", "maf"]


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory, tiny_store: Path) -> Path:
    out = tmp_path_factory.mktemp("errors") / "sims.zarr"
    assert main(simulate_args(tiny_store, out)) == 0
    return out


# -- a full disk ------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_disk_full_in_build_keeps_the_old_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    code: int,
) -> None:
    out = tmp_path / "m.zarr"
    assert main(["anatomy", "build", "--preset", "tiny", "--seed", "0", "--out", str(out)]) == 0
    before = listing(tmp_path)
    capsys.readouterr()
    disk_full(monkeypatch, code)
    argv = ["anatomy", "build", "--preset", "tiny", "--seed", "1", "--out", str(out),
            "--overwrite", "--no-progress"]  # the bar would precede the error line
    assert main(argv) == EXIT_USER
    line = one_line_error(capsys.readouterr().err)
    assert os.strerror(code) in line and errno.errorcode[code] in line and str(out) in line
    assert listing(tmp_path) == before  # the old store is untouched, no temporary is left
    with pytest.raises(OSError):
        main(["--debug", *argv])


def test_disk_full_in_simulate(tiny_store: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sims.zarr"
    disk_full(monkeypatch)
    assert main(simulate_args(tiny_store, out)) == EXIT_USER
    line = one_line_error(capsys.readouterr().err)
    assert "No space left on device (ENOSPC)" in line and str(out) in line
    from wiring.simulation.store import SimulationStore

    if out.exists():  # whatever was written is a store with nothing claimed done
        assert SimulationStore.open(out).n_done == 0


def test_disk_full_in_train_and_analyze(sims: Path, tiny_store: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    post = tmp_path / "posterior"
    with monkeypatch.context() as m:
        def no_space(*args: Any, **kwargs: Any) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        m.setattr(torch, "save", no_space)
        assert main(["train", "--store", str(sims), "--out", str(post), *TRAIN_FAST]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "No space left on device" in line and str(post) in line
    assert not post.exists() and sorted(p.name for p in tmp_path.iterdir()) == []

    assert main(["train", "--store", str(sims), "--out", str(post), *TRAIN_FAST]) == 0
    report = tmp_path / "report"
    real = Path.write_bytes

    def full(self: Path, data: Any) -> int:
        if self.suffix == ".png":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    capsys.readouterr()
    argv = ["analyze", "--posterior", str(post), "--anatomy", str(tiny_store),
            "--measurements", "vpm-invivo", "--out", str(report), "--n-samples", "100",
            "--n-predictive", "50", "--n-calibration", "0", "--skip",
            "calibration,predictions"]
    assert main(argv) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "No space left on device" in line and str(report) in line
    assert not report.exists()


def test_disk_full_in_connectome(tiny_store: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "conn.zarr"
    disk_full(monkeypatch)
    argv = ["connectome", "--anatomy", str(tiny_store), "--rule", "dso", "--theta", "1,1,1",
            "--seed", "1", "--out", str(out), "--no-progress"]
    assert main(argv) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "No space left on device" in line
    assert not out.exists()


# -- plugin rules that fail at run time ------------------------------------------------------
@pytest.mark.usefixtures("plugins")
@pytest.mark.parametrize(
    ("rule", "words"),
    [("raising_rate", "rate() raised ZeroDivisionError: the plugin divided by zero"),
     ("negative_rate", "rate() returned -"),
     ("nan_rate", "rate() returned nan")],
)
def test_plugin_rate_failures_in_simulate(rule: str, words: str, tiny_store: Path,
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sims.zarr"
    assert main(simulate_args(tiny_store, out, "--prior", "uniform", rule=rule, n="100")) == 1
    line = one_line_error(capsys.readouterr().err)
    assert f"rule {rule!r}" in line and words in line
    from wiring.simulation.store import SimulationStore

    if out.exists():  # no chunk is stored as done with made-up x
        assert SimulationStore.open(out).n_done == 0
    with pytest.raises(Exception, match=rule):
        main(["--debug", *simulate_args(tiny_store, out, "--prior", "uniform", rule=rule,
                                        n="100")])


@pytest.mark.usefixtures("plugins")
@pytest.mark.parametrize("rule", ["raising_rate", "negative_rate"])
def test_plugin_rate_failures_in_connectome(rule: str, tiny_store: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "conn.zarr"
    argv = ["connectome", "--anatomy", str(tiny_store), "--rule", rule, "--theta", "1",
            "--seed", "1", "--out", str(out), "--no-progress"]
    assert main(argv) == 1
    line = one_line_error(capsys.readouterr().err)
    assert f"rule {rule!r}" in line
    assert listing(tmp_path) == {}


# -- bad numbers and damaged data ------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1e-3", "abc"])
def test_train_learning_rate_must_be_finite_and_positive(
    value: str, sims: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    post = tmp_path / "posterior"
    assert main(["train", "--store", str(sims), "--out", str(post),
                 f"--learning-rate={value}"]) == 2
    assert "--learning-rate" in capsys.readouterr().err
    assert not post.exists()


def test_damaged_simulation_chunk_is_one_line(sims: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    copy = tmp_path / "sims.zarr"
    shutil.copytree(sims, copy)
    chunk = next(p for p in sorted((copy / "x").rglob("*")) if p.is_file()
                 and p.name != "zarr.json")
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])  # a truncated file, as a crashed copy leaves it
    post = tmp_path / "posterior"
    assert main(["train", "--store", str(copy), "--out", str(post), *TRAIN_FAST]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "sims.zarr" in line
    assert not post.exists()


# -- sizes ------------------------------------------------------------------------------------
def test_simulate_refuses_what_cannot_fit(tiny_store: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import time

    out = tmp_path / "sims.zarr"
    t0 = time.perf_counter()
    assert main(simulate_args(tiny_store, out, n="1e12")) == 1
    assert time.perf_counter() - t0 < 30
    line = one_line_error(capsys.readouterr().err)
    assert "1,000,000,000,000 simulations" in line and "TiB" in line and "free" in line
    assert listing(tmp_path) == {}


def test_memory_estimate_is_refused(tiny_store: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from wiring.simulation import resources

    monkeypatch.setattr(resources, "physical_memory_bytes", lambda: 1 << 20)
    assert main(simulate_args(tiny_store, tmp_path / "s.zarr", n="100000")) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "of memory to train on" in line and "1 MiB" in line
    assert listing(tmp_path) == {}


# -- anything else ----------------------------------------------------------------------------
def test_unexpected_exception_is_an_internal_error(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.commands import info

    def boom(args: Any) -> int:
        raise KeyError("x")

    monkeypatch.setattr(info, "_run", boom)
    assert main(["info"]) == EXIT_INTERNAL
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith("wiring: internal error: KeyError") and "--debug" in line
    with pytest.raises(KeyError):
        main(["--debug", "info"])


def test_multi_line_messages_are_joined(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.commands import info
    from wiring.errors import WiringError

    def boom(args: Any) -> int:
        raise WiringError("first line\n  second line")

    monkeypatch.setattr(info, "_run", boom)
    assert main(["info"]) == 1
    assert one_line_error(capsys.readouterr().err) == "wiring: error: first line second line"


def test_chunk_memory_is_checked(tiny_store: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from wiring.simulation import resources

    monkeypatch.setattr(resources, "physical_memory_bytes", lambda: 1 << 30)
    monkeypatch.setattr(resources, "available_disk_bytes", lambda path: 1 << 40)
    argv = simulate_args(tiny_store, tmp_path / "s.zarr", n="1000000")
    argv[argv.index("--chunk-size") + 1] = "1000000"
    assert main(argv) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "one simulation chunk of 1,000,000 rows" in line and "--chunk-size" in line
    assert listing(tmp_path) == {}


def test_oversized_chunk_size_stores_one_chunk_of_n_rows(tmp_path: Path) -> None:
    import zarr

    from wiring.inference.priors import PriorSpec
    from wiring.simulation.store import SimulationStore

    prior = PriorSpec(kind="uniform", names=("a",), low=(0.0,), high=(1.0,))
    SimulationStore.create(tmp_path / "s.zarr", n=10, chunk_size=10**9, prior_spec=prior,
                           rule_info={"name": "r"}, measurement_names=["m"],
                           measurement_hash="h", anatomy_hash="a", seed=0)
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    assert group["theta"].chunks == (10, 1) and group["x"].chunks == (10, 1)


def test_swc_import_errors_are_one_line(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "loop.swc").write_text("1 1 0 0 0 5 -1\n2 3 10 0 0 1 3\n3 3 20 0 0 1 2\n")
    (tmp_path / "far.swc").write_text("1 1 0 0 0 5 -1\n2 2 0 -10 0 1 1\n3 2 0 -1e9 0 1 2\n")
    for name, words in (("loop", "loop.swc, line 2: sample 2 lies on a cycle"),
                        ("far", "far.swc, line 3: a sample lies 1e+09 µm")):
        manifest = tmp_path / f"{name}.csv"
        manifest.write_text(f"id,swc,cell_type,x,y,depth\n1,{name}.swc,L4ss,0,0,700\n")
        out = tmp_path / f"{name}.zarr"
        assert main(["anatomy", "import", "swc", str(manifest), "--out", str(out)]) == 1
        assert words in one_line_error(capsys.readouterr().err)
        assert not out.exists()
    # the limit is an option
    out = tmp_path / "far.zarr"
    assert main(["anatomy", "import", "swc", str(tmp_path / "far.csv"), "--out", str(out),
                 "--max-voxels", "100"]) == 1
    assert "limit of 100" in one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize(
    "argv",
    [["run", "--seed", "-1"], ["run", "--workers", "-2"], ["train", "--store", "s", "--out", "p",
                                                            "--seed", "-1"],
     ["rules", "check", "dso", "--seed", "-1"]],
)
def test_negative_seeds_and_workers_are_usage_errors(argv: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "must be a non-negative integer" in capsys.readouterr().err


def test_disk_full_mid_simulation_keeps_finished_chunks(
    tiny_store: Path, sims: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The disk fills after the first chunk: exit 1, one line; once space is back, the same
    command resumes and gives exactly the store of an uninterrupted run."""
    import zarr.storage._local as local

    from wiring.simulation.store import SimulationStore

    out = tmp_path / "sims.zarr"
    real = local._put
    written: list[str] = []

    def put(path: Path, value: Any, exclusive: bool = False) -> int:
        p = Path(path)
        if p.name != "zarr.json" and "chunk_seed" not in p.parts:
            written.append(str(p))
            if len(written) > 3:  # θ, x and status of the first chunk fit; then the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return int(real(path, value, exclusive=exclusive))

    with monkeypatch.context() as m:
        m.setattr(local, "_put", put)
        assert main(simulate_args(tiny_store, out)) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "No space left on device" in line
    partial = SimulationStore.open(out)
    assert 0 < partial.n_done < partial.n, written
    assert main(simulate_args(tiny_store, out)) == 0
    assert SimulationStore.open(out).content_hash() == SimulationStore.open(sims).content_hash()


@pytest.mark.parametrize("rule", ["dso_linear", "peters_neuron", "peters_synapse"])
def test_default_prior_of_every_builtin_rule_simulates(rule: str, tiny_store: Path,
                                                      tmp_path: Path) -> None:
    """The documented default (``--prior gaussian``) was refused for these rules: its mass
    fell outside their domain. Now every θ drawn lies inside it and no x is NaN."""
    import numpy as np

    from wiring.rules.registry import get_rule
    from wiring.simulation.store import SimulationStore

    out = tmp_path / "sims.zarr"
    assert main(simulate_args(tiny_store, out, rule=rule)) == 0
    theta, x = SimulationStore.open(out).load()
    assert np.isfinite(x).all()
    for k, p in enumerate(get_rule(rule).params):
        assert np.all((theta[:, k] >= p.low) & (theta[:, k] <= p.high))
