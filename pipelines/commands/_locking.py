"""Commands hold the write lock of their output for their whole run (see
:mod:`anatomy.storeguard`): a second command writing the same output is refused at once, before
it does any work, instead of after it (e.g. after training)."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

__all__ = ["holding_output_lock"]

Handler = Callable[[argparse.Namespace], int]


def holding_output_lock(handler: Handler, *, what: str, attr: str = "out",
                        make_parent: bool = False) -> Handler:
    """``handler`` run while holding the lock of the path in ``args.<attr>`` (whose folder is
    created first with ``make_parent``, else must exist)."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from anatomy.storeguard import store_lock

        out = Path(getattr(args, attr))
        if make_parent:
            out.parent.mkdir(parents=True, exist_ok=True)
        with store_lock(out, what=what):
            return handler(args)

    return run
