"""Shared test configuration: opt-in slow tests, session-scoped model fixtures, rule-plugin isolation."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from wiring.rules import registry

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run slow tests")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("OMP_NUM_THREADS") is None:
        os.environ["OMP_NUM_THREADS"] = "2"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run_slow = config.getoption("--run-slow")
    only_slow = config.getoption("-m") == "slow"
    if run_slow or only_slow:
        return
    skip = pytest.mark.skip(reason="slow test: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_model() -> Any:
    """The ``tiny`` synthetic model (seed 0), in memory."""
    from anatomy.generate import build_model

    return build_model("tiny", seed=0)


@pytest.fixture(scope="session")
def small_model() -> Any:
    """The ``small`` synthetic model (seed 0), in memory."""
    from anatomy.generate import build_model

    return build_model("small", seed=0)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory, tiny_model: Any) -> Path:
    """The ``tiny`` model written to a zarr store (read-only for tests: copy before mutating)."""
    from anatomy.store import write_model

    path = tmp_path_factory.mktemp("anatomy") / "tiny.zarr"
    write_model(tiny_model, path)
    return path


# -- rule-plugin isolation ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_rule_registry() -> Iterator[None]:
    """Every test starts and ends with a freshly discovered rule registry."""
    registry.refresh_rules()
    yield
    registry.refresh_rules()


InstallPlugins = Callable[..., None]


@pytest.fixture
def rule_plugins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[InstallPlugins]:
    """Install fake wiring-rule plugins for one test, and remove every trace afterwards.

    ``rule_plugins(entry_points, modules)`` writes ``modules`` (module name -> source) to a
    temporary directory on ``sys.path`` and makes the registry see exactly ``entry_points``
    (rule name -> ``"module:Class"``) besides the built-ins, instead of the installed plugins.
    ``rule_plugins(site=path, modules=names)`` puts a site directory with fake ``*.dist-info``
    distributions on ``sys.path`` instead (for provenance tests). The imported plugin modules
    are dropped from ``sys.modules`` and the registry is rediscovered after the test.
    """
    imported: list[str] = []

    def install(
        entry_points: Mapping[str, str] | None = None,
        modules: Mapping[str, str] | list[str] | None = None,
        *,
        site: Path | None = None,
    ) -> None:
        names = list(modules or [])
        if isinstance(modules, Mapping):
            for name, source in modules.items():
                (tmp_path / f"{name}.py").write_text(source)
            monkeypatch.syspath_prepend(str(tmp_path))
        if site is not None:
            monkeypatch.syspath_prepend(str(site))
        if entry_points is not None:
            eps = [
                metadata.EntryPoint(name=n, value=v, group=registry.ENTRY_POINT_GROUP)
                for n, v in entry_points.items()
            ]
            monkeypatch.setattr(registry, "_entry_points", lambda: eps)
        imported.extend(names)
        registry.refresh_rules()

    yield install
    registry.refresh_rules()
    for name in imported:
        sys.modules.pop(name, None)
