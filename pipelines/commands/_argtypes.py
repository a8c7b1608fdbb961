"""Argument types shared by the command groups (argparse turns their errors into exit 2)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_measurement_choice", "non_negative_int", "positive_int", "selection"]


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


def selection(text: str) -> list[str]:
    """Comma-separated measurement ids or labels (``L4,L4SEP,L5PT``), in order."""
    names = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise argparse.ArgumentTypeError(
            f"must be comma-separated measurement ids or labels (e.g. L4,L5PT), got {text!r}"
        )
    return names


def add_measurement_choice(parser: Any, *, n_pairs_help: str | None = None) -> None:
    """Add ``--select`` (and, unless ``n_pairs_help`` is None, ``--n-pairs``) to ``parser``."""
    parser.add_argument(
        "--select", type=selection, default=None, metavar="ID,...",
        help="measurements to use, by id or label, in this order (the order of x); 'all' "
        "for every one (default: the whole set; for 'model' the source's default experiment "
        "if it defines one)",
    )
    if n_pairs_help is not None:
        parser.add_argument("--n-pairs", type=positive_int, default=None, metavar="N",
                            help=n_pairs_help)
