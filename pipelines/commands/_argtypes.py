"""Argument types shared by the command groups (argparse turns their errors into exit 2)."""

from __future__ import annotations

import argparse

__all__ = ["anatomy_parent", "non_negative_int", "positive_int", "rule_parent"]


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a non-negative integer, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def anatomy_parent() -> argparse.ArgumentParser:
    """Parent parser of ``--anatomy`` and ``--anatomy-seed``, shared by the commands that load a model."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--anatomy", required=True, metavar="PATH_OR_PRESET",
                   help="structural-model store, or a preset name (tiny, small, column, field)")
    p.add_argument("--anatomy-seed", type=non_negative_int, default=0,
                   help="seed of a preset model (default 0)")
    return p


def rule_parent() -> argparse.ArgumentParser:
    """Parent parser of ``--rule``, shared by the commands that apply a wiring rule."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--rule", required=True, help="wiring rule name (see `wiring rules list`)")
    return p
