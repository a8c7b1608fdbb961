"""Disk and memory estimates checked before long jobs start.

A simulation store of ``n`` rows needs about ``n · (d + m) · 8`` bytes on disk (θ and x in
float64; zstd gains little on random floats) and as much memory again when it is loaded for
training. :func:`check_simulation_size` compares these with the free space of the target
file system and the machine's physical memory and refuses at once, with both numbers, instead
of letting a job run for hours and fail (or fill the disk) at the end.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from wiring.errors import InsufficientResourcesError

__all__ = [
    "available_disk_bytes",
    "check_simulation_size",
    "format_bytes",
    "physical_memory_bytes",
    "simulation_store_bytes",
]

#: Bytes per stored value (float64) of θ and x.
_VALUE_BYTES = 8
#: Headroom kept free on the target file system (and of the memory) for everything else.
_HEADROOM = 1.1


def format_bytes(n: float) -> str:
    """``n`` bytes as a short human-readable string (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def simulation_store_bytes(n: int, d: int, m: int) -> int:
    """Bytes of θ (n, d) and x (n, m) in float64: the store's size on disk (upper estimate)
    and the memory the whole store needs when loaded."""
    return int(n) * (int(d) + max(int(m), 1)) * _VALUE_BYTES


def available_disk_bytes(path: str | os.PathLike[str]) -> int | None:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent);
    None when it cannot be determined."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return int(shutil.disk_usage(p).free)
    except OSError:
        return None


def physical_memory_bytes() -> int | None:
    """The machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_simulation_size(
    path: str | os.PathLike[str],
    *,
    n: int,
    d: int,
    m: int,
    existing_bytes: int = 0,
    chunk_size: int | None = None,
    pairs_per_row: int = 0,
) -> int:
    """Raise :class:`InsufficientResourcesError` when a simulation store of ``n`` rows (d
    parameters, m measurements) does not fit the free disk space at ``path`` or the physical
    memory needed to train on it, or when one chunk of ``chunk_size`` rows (each sampling
    ``pairs_per_row`` pairs: an index and a uniform of 8 bytes each) would not fit in memory;
    return the store estimate in bytes.

    ``existing_bytes`` is space the job will free first (a store it resumes).
    """
    mem = physical_memory_bytes()
    if chunk_size is not None and mem is not None:
        rows = min(int(chunk_size), int(n))
        per_chunk = rows * ((int(d) + max(int(m), 1)) * _VALUE_BYTES + 16 * int(pairs_per_row))
        if per_chunk * 2 > mem:
            raise InsufficientResourcesError(
                f"one simulation chunk of {rows:,} rows needs about {format_bytes(per_chunk)} "
                f"of memory per worker, more than half of this machine's "
                f"{format_bytes(mem)}; use a smaller --chunk-size / simulation.chunk_size"
            )
    need = simulation_store_bytes(n, d, m)
    free = available_disk_bytes(path)
    if free is not None and need * _HEADROOM > free + existing_bytes:
        raise InsufficientResourcesError(
            f"{n:,} simulations of {d} parameter(s) and {m} measurement(s) need about "
            f"{format_bytes(need)} of disk at {path}, but only {format_bytes(free)} is free; "
            f"simulate fewer (--n / simulation.n) or write elsewhere"
        )
    if mem is not None and need * _HEADROOM > mem:
        raise InsufficientResourcesError(
            f"{n:,} simulations of {d} parameter(s) and {m} measurement(s) need about "
            f"{format_bytes(need)} of memory to train on, but this machine has "
            f"{format_bytes(mem)}; simulate fewer (--n / simulation.n)"
        )
    return need
