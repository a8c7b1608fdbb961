"""Atomic replacement of output directories, shared by every store writer of the project.

A writer builds its output in a temporary sibling directory and then calls
:func:`move_into_place`: readers see either the old complete directory or the new complete one,
never a mix, and the old one is deleted only after the new one is in place.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

__all__ = ["move_into_place"]


def move_into_place(tmp: Path, path: Path) -> None:
    """Rename the finished directory ``tmp`` to ``path``, replacing ``path`` if it exists.

    The caller decides beforehand whether replacing is allowed. If the final rename fails, the
    old directory is put back.
    """
    if not path.exists():
        os.rename(tmp, path)
        return
    old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
