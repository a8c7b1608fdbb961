"""Job walltimes of the batch systems and the worker lifetime derived from them.

A batch system kills a job at its walltime, and with it the dask workers in the middle of their
tasks. dask's remedy, recommended by dask-jobqueue, is a worker *lifetime* shorter than the
walltime: at the end of its lifetime a worker retires gracefully (the scheduler stops giving it
tasks and moves the results it holds to other workers), its ``dask worker`` process exits, the
job ends, and the adaptive cluster submits a replacement job. ``--lifetime-stagger`` spreads the
retirements (each worker retires at a random time in lifetime ± stagger), so that the workers of
jobs started together do not all leave at once. ``--no-lifetime-restart`` makes sure the worker
exits (``--lifetime-restart``, which a site's dask config may set, would start a new worker
process inside the same job, and the walltime would kill it mid-task anyway).

By default the lifetime is derived from ``[cluster] walltime``::

    stagger  = min(5 % of the walltime, 5 min)
    margin   = min(max(5 % of the walltime, 1 min), 10 min, 25 % of the walltime)
    lifetime = walltime - margin - stagger

so the last worker retires ``margin`` before the walltime (e.g. 02:00:00 → lifetime 1 h 49 min
± 5 min, every worker gone 6 min before the walltime). The margin covers the start of the
worker process inside the job (the lifetime counts from the worker's start, not the job's) and
the hand-over of the results a retiring worker holds. ``[cluster] lifetime`` and
``lifetime_stagger`` override either value; ``lifetime = "off"`` disables retirement (the
workers then die at the walltime and their tasks are redone, as before).

Walltimes are read in each batch system's own syntax, since the job script passes them on
unchanged:

==========  ====================================================================
slurm       ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``; ``UNLIMITED``
pbs, sge    ``S``, ``M:S``, ``H:M:S``
lsf         ``M``, ``H:M`` (``bsub -W [hour:]minute``); also ``H:M:S``, which
            :func:`native_walltime` rounds up to whole minutes for ``bsub`` (so the
            default ``02:00:00`` works on every system)
==========  ====================================================================
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "BATCH_KINDS",
    "JobTimes",
    "WorkerLifetime",
    "default_lifetime",
    "format_seconds",
    "native_walltime",
    "parse_duration",
    "walltime_seconds",
    "worker_lifetime",
]

#: The ``cluster.kind`` values that submit batch jobs (dask-jobqueue).
BATCH_KINDS = ("slurm", "pbs", "sge", "lsf")

#: The walltime syntax of each batch system, for error messages.
WALLTIME_SYNTAX: dict[str, str] = {
    "slurm": "M, M:S, H:M:S, D-H, D-H:M or D-H:M:S, e.g. 02:00:00",
    "pbs": "S, M:S or H:M:S, e.g. 02:00:00",
    "sge": "S, M:S or H:M:S, e.g. 02:00:00",
    "lsf": "M, H:M (bsub -W [hour:]minute) or H:M:S, e.g. 02:00",
}

_NUMBER = r"\d+(?:\.\d*)?"
_UNITS = {
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}


def _fields(text: str) -> list[int] | None:
    parts = text.split(":")
    if not all(p.isdigit() for p in parts):
        return None
    return [int(p) for p in parts]


def walltime_seconds(walltime: str, kind: str) -> float | None:
    """Seconds of a walltime in ``kind``'s syntax; None for SLURM's ``UNLIMITED``/``INFINITE``.

    Raises
    ------
    ValueError
        ``walltime`` is not in the batch system's syntax (the message gives the syntax).
    """
    text = walltime.strip()
    if kind == "slurm" and text.upper() in ("UNLIMITED", "INFINITE"):
        return None
    seconds: float | None = None
    if kind == "slurm":
        days = 0
        rest = text
        if "-" in text:
            d, rest = text.split("-", 1)
            days = int(d) if d.isdigit() else -1
        f = _fields(rest)
        if f is not None and days >= 0:
            if "-" in text:  # D-H, D-H:M, D-H:M:S
                if len(f) <= 3:
                    h, m, s = [*f, 0, 0][:3]
                    seconds = days * 86400 + h * 3600 + m * 60 + s
            elif len(f) == 1:
                seconds = f[0] * 60
            elif len(f) == 2:
                seconds = f[0] * 60 + f[1]
            elif len(f) == 3:
                seconds = f[0] * 3600 + f[1] * 60 + f[2]
    elif kind in ("pbs", "sge"):
        f = _fields(text)
        if f is not None and 1 <= len(f) <= 3:
            seconds = sum(v * 60**i for i, v in enumerate(reversed(f)))
    elif kind == "lsf":
        f = _fields(text)
        if f is not None and 1 <= len(f) <= 3:
            seconds = (f[0] * 60 if len(f) == 1 else f[0] * 3600 + f[1] * 60
                       + (f[2] if len(f) == 3 else 0))
    else:
        raise ValueError(f"{kind!r} is not a batch system")
    if seconds is None or seconds <= 0:
        raise ValueError(
            f"{walltime!r} is not a positive {kind} walltime ({WALLTIME_SYNTAX[kind]})"
        )
    return float(seconds)


def native_walltime(walltime: str, kind: str) -> str:
    """``walltime`` as the batch system's job script takes it: for LSF an ``H:M:S`` becomes
    ``H:MM`` (``bsub -W``), seconds rounded up to a whole minute; anything else is unchanged.

    >>> native_walltime("02:00:00", "lsf"), native_walltime("00:30:20", "lsf")
    ('2:00', '0:31')
    >>> native_walltime("02:00:00", "slurm")
    '02:00:00'
    """
    text = walltime.strip()
    if kind != "lsf" or text.count(":") != 2:
        return text
    seconds = walltime_seconds(text, kind)
    assert seconds is not None  # LSF has no unlimited walltime
    minutes = math.ceil(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def parse_duration(text: str) -> float:
    """Seconds of a duration: ``H:M:S`` or a number with a unit (``110m``, ``1.5h``, ``90 s``,
    ``1h50m``); a bare number is seconds.

    Raises
    ------
    ValueError
        Not a duration, or negative.
    """
    s = text.strip().lower()
    if s.startswith("-"):
        raise ValueError(f"{text!r} is negative")
    f = _fields(s)
    if f is not None and len(f) == 3:
        return float(f[0] * 3600 + f[1] * 60 + f[2])
    if re.fullmatch(_NUMBER, s):
        return float(s)
    parts = re.findall(rf"({_NUMBER})\s*([a-z]+)", s)
    if parts and re.fullmatch(rf"(?:\s*{_NUMBER}\s*[a-z]+)+\s*", s):
        total = 0.0
        for number, unit in parts:
            if unit not in _UNITS:
                break
            total += float(number) * _UNITS[unit]
        else:
            return total
    raise ValueError(f"{text!r} is not a duration (e.g. 110m, 1.5h, 6600s or 01:50:00)")


def format_seconds(seconds: float) -> str:
    """``1h 49m``, ``13m 15s``, ``45s``: a duration for messages."""
    total = round(seconds)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h}h"] if h else []
    if m:
        parts.append(f"{m}m")
    if s or not parts:
        parts.append(f"{s}s")
    return " ".join(parts)


class JobTimes(Protocol):
    """The ``[cluster]`` keys the lifetime depends on (a :class:`~pipelines.config.ClusterConfig`;
    a protocol, so that this module does not import the config that validates with it)."""

    @property
    def kind(self) -> str: ...
    @property
    def walltime(self) -> str: ...
    @property
    def lifetime(self) -> str: ...
    @property
    def lifetime_stagger(self) -> str: ...


@dataclass(frozen=True, slots=True)
class WorkerLifetime:
    """When dask workers retire: at a random time in ``seconds ± stagger``."""

    seconds: float
    stagger: float

    def worker_args(self) -> list[str]:
        """``dask worker`` options: retire, stagger, and exit afterwards (no restart inside the
        job, which would keep the job running into its walltime)."""
        return [
            "--lifetime", f"{int(self.seconds)}s",
            "--lifetime-stagger", f"{int(self.stagger)}s",
            "--no-lifetime-restart",
        ]


def default_lifetime(walltime: float) -> WorkerLifetime:
    """The lifetime derived from a walltime of ``walltime`` seconds (see the module docstring)."""
    stagger = float(math.floor(min(walltime / 20, 300.0)))
    margin = min(max(walltime / 20, 60.0), 600.0, walltime / 4)
    return WorkerLifetime(float(math.floor(walltime - margin - stagger)), stagger)


def worker_lifetime(cfg: JobTimes) -> WorkerLifetime | None:
    """The workers' lifetime for a batch-system ``[cluster]`` section; None when disabled
    (``lifetime = "off"``, or no walltime limit and no explicit lifetime).

    Raises
    ------
    ValueError
        A one-line message naming the ``cluster.`` key at fault: an unparsable walltime,
        lifetime or stagger, or a lifetime (plus stagger) that does not end before the walltime.
    """
    kind = cfg.kind.strip()
    try:
        wall = walltime_seconds(cfg.walltime, kind)
    except ValueError as err:
        raise ValueError(f"cluster.walltime {err}") from None
    text = cfg.lifetime.strip()
    if text.lower() == "off":
        return None
    stagger_text = cfg.lifetime_stagger.strip()
    stagger: float | None = None
    if stagger_text:
        try:
            stagger = parse_duration(stagger_text)
        except ValueError as err:
            raise ValueError(f"cluster.lifetime_stagger {err}") from None
    if not text:
        if wall is None:
            return None
        auto = default_lifetime(wall)
        if stagger is None:
            return auto
        # an explicit stagger keeps the derived time at which the last worker is gone
        lifetime = WorkerLifetime(auto.seconds + auto.stagger - stagger, stagger)
    else:
        try:
            seconds = parse_duration(text)
        except ValueError as err:
            raise ValueError(f"cluster.lifetime {err}") from None
        if seconds <= 0:
            raise ValueError(f"cluster.lifetime must be positive (or \"off\"), got {text!r}")
        if stagger is None:
            # the derived stagger, kept within half the time left before the walltime
            stagger = min(seconds / 20, 300.0)
            if wall is not None:
                stagger = min(stagger, max(0.0, (wall - seconds) / 2))
            stagger = float(math.floor(stagger))
        lifetime = WorkerLifetime(seconds, stagger)
    if lifetime.stagger >= lifetime.seconds:
        raise ValueError(
            f"cluster.lifetime_stagger ({format_seconds(lifetime.stagger)}) must be shorter "
            f"than the lifetime ({format_seconds(lifetime.seconds)})"
        )
    if wall is not None and lifetime.seconds + lifetime.stagger >= wall:
        raise ValueError(
            f"cluster.lifetime ({format_seconds(lifetime.seconds)}) plus "
            f"cluster.lifetime_stagger ({format_seconds(lifetime.stagger)}) must end before "
            f"cluster.walltime ({cfg.walltime.strip()} = {format_seconds(wall)}): the jobs "
            f"would be killed before their workers retire"
        )
    return lifetime
