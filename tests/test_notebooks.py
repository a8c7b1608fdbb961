"""Every notebook in ``notebooks/`` runs top to bottom without an error, and matches its generator.

Notebooks execute in a fresh kernel of the interpreter running the tests (a kernel spec written
to a temporary ``JUPYTER_PATH`` entry, so a ``python3`` kernel registered elsewhere on the
machine, possibly for another environment, is never picked up), with the temporary directory as
working directory, so a notebook cannot write into the repository.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import ipykernel  # noqa: F401  (a test dependency: the notebooks run in its kernel)
import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL = "wiring-tests-python"
#: Seconds any single cell may take before the run fails (generous: CI machines are shared).
CELL_TIMEOUT_S = 600


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  NOTEBOOK_DIR / "build_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec that starts an IPython kernel with this very interpreter."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python {sys.version_info.major}.{sys.version_info.minor} (tests)",
        "language": "python",
    }), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS, f"no notebook found in {NOTEBOOK_DIR}"


def test_notebooks_match_their_generator() -> None:
    """The committed .ipynb files are exactly what build_notebooks.py writes (no outputs)."""
    builder = _builder()
    assert sorted(builder.NOTEBOOKS) == [p.name for p in NOTEBOOKS], (
        "notebooks/ holds notebooks the generator does not know about (or misses some)"
    )
    for path in NOTEBOOKS:
        expected = builder.render(builder.NOTEBOOKS[path.name])
        assert path.read_text(encoding="utf-8") == expected, (
            f"{path.name} differs from notebooks/build_notebooks.py; regenerate it with "
            f"`python notebooks/build_notebooks.py`"
        )
        nb = nbformat.reads(expected, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


# About 30 s of CPU on two idle cores (imports, model, simulations, training, analysis), but
# well over a minute of wall time on a shared machine: hence slow (CI runs slow tests too).
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, kernel_name: str, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    t0 = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:  # name the notebook, keep the traceback
        pytest.fail(f"{path.name}: a cell raised an error:\n{err}")
    wall = time.perf_counter() - t0
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: error outputs {errors}"
    assert all(c.get("execution_count") for c in code), f"{path.name}: a cell did not run"
    # the last code cell states the conclusions; it must have produced them
    assert code[-1].get("outputs"), f"{path.name}: the last code cell produced no output"
    print(f"{path.name} ran in {wall:.0f} s")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jupyter"], (
        f"{path.name} wrote files into its working directory"
    )
