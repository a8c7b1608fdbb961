"""``run.json``: what a run directory holds, which stages finished, and how long each took.

Written atomically (temporary file + ``os.replace``) after every change, so a run killed at any
moment leaves either the previous or the new record, never a torn one.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["RunRecord"]


def _git_sha() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else None


@dataclass
class RunRecord:
    """The contents of ``run.json`` with helpers to mark stages started and finished."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, run_dir: Path, *, config_hash: str, seed: int) -> RunRecord:
        """Load ``run_dir/run.json`` or start a new record."""
        path = run_dir / "run.json"
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            data = {"created": datetime.now(UTC).isoformat(timespec="seconds"), "stages": {}}
        from pipelines.commands.info import show_versions

        data.update(
            {
                "config_hash": config_hash,
                "seed": seed,
                "versions": show_versions(),
                "platform": platform.platform(),
                "git_sha": _git_sha(),
            }
        )
        data.setdefault("stages", {})
        data.setdefault("hashes", {})
        data.setdefault("seeds", {})
        record = cls(path=path, data=data)
        record.save()
        return record

    def save(self) -> None:
        """Write atomically."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)

    def is_done(self, stage: str) -> bool:
        """Whether ``stage`` finished in an earlier invocation."""
        return bool(self.data["stages"].get(stage, {}).get("status") == "done")

    def start(self, stage: str) -> float:
        """Mark ``stage`` running; returns the start time for :meth:`finish`."""
        entry = self.data["stages"].setdefault(stage, {})
        for stale in ("error", "ended"):
            entry.pop(stale, None)
        entry["status"] = "running"
        entry["attempts"] = int(entry.get("attempts", 0)) + 1
        self.save()
        return time.perf_counter()

    def finish(self, stage: str, t0: float, **info: Any) -> None:
        """Mark ``stage`` done with its wall time and extra JSON-native info."""
        entry = self.data["stages"].setdefault(stage, {})
        entry.update(info)
        entry["status"] = "done"
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        entry["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.save()

    def fail_running(self, error: BaseException) -> list[str]:
        """Mark every stage still "running" as "failed" (or "interrupted" for Ctrl-C) with the
        error's one-line message; returns those stages."""
        interrupted = isinstance(error, KeyboardInterrupt)
        message = " ".join(str(error).split()) or type(error).__name__
        stages = [name for name, entry in self.data["stages"].items()
                  if entry.get("status") == "running"]
        for name in stages:
            entry = self.data["stages"][name]
            entry["status"] = "interrupted" if interrupted else "failed"
            entry["error"] = f"{type(error).__name__}: {message}"[:1000]
            entry["ended"] = datetime.now(UTC).isoformat(timespec="seconds")
        if stages:
            self.save()
        return stages

    def mark_abandoned(self) -> list[str]:
        """Mark stages still "running" from an earlier process as "interrupted". Call only
        while holding the run directory's lock: then no live process is running them (one
        killed with ``kill -9`` could not record its end)."""
        stages = [name for name, entry in self.data["stages"].items()
                  if entry.get("status") == "running"]
        for name in stages:
            entry = self.data["stages"][name]
            entry["status"] = "interrupted"
            entry["error"] = "the process running this stage ended without recording why"
        if stages:
            self.save()
        return stages

    def set_hash(self, name: str, value: str) -> None:
        """Record a content hash (anatomy, measurement set, store, posterior)."""
        self.data["hashes"][name] = value
        self.save()

    def set_seed(self, name: str, value: int) -> None:
        """Record a derived seed."""
        self.data["seeds"][name] = int(value)
        self.save()
