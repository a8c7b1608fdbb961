"""Shared test configuration: opt-in slow tests and session-scoped model fixtures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

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
