"""Argument types shared by the command groups (argparse turns their errors into exit 2)."""

from __future__ import annotations

import argparse
import math
from typing import Any

__all__ = [
    "add_measurement_choice",
    "add_progress_option",
    "anatomy_parent",
    "finite_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "rule_parent",
    "selection",
    "show_progress",
]


def _integer(text: str) -> int:
    """An integer written plainly (``20000``) or in exact scientific notation (``2e4``)."""
    try:
        return int(text)
    except ValueError:
        pass
    value = float(text)  # ValueError for words
    if not math.isfinite(value) or value != int(value):
        raise ValueError(text)
    return int(value)



def non_negative_int(text: str) -> int:
    """An integer >= 0 (``2e4`` is accepted as 20000)."""
    try:
        value = _integer(text)
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


def finite_float(text: str) -> float:
    """A finite real number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite real number > 0 (e.g. a learning rate)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
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


def add_progress_option(parser: Any, *, what: str = "progress bars") -> None:
    """``--no-progress``, the same in every long-running command: its bars (on stderr) are
    shown unless this option or ``-q`` is given."""
    parser.add_argument("--no-progress", action="store_true",
                        help=f"hide {what} (as -q does)")


def show_progress(args: argparse.Namespace) -> bool:
    """Whether a command shows its progress bars: not with ``--no-progress`` nor ``-q``."""
    return not getattr(args, "no_progress", False) and int(getattr(args, "quiet", 0) or 0) == 0
