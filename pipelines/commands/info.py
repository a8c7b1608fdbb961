"""``wiring info``: versions of this package and of the scientific stack."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib import metadata
from typing import Any

__all__ = ["register", "show_versions"]

_PACKAGES = ("wiring-sbi", "numpy", "scipy", "sparse", "dask", "distributed", "zarr", "torch",
             "sbi", "matplotlib", "h5py", "morphio", "dask-jobqueue")


def show_versions() -> dict[str, str]:
    """Installed versions of the packages results depend on (``"not installed"`` if missing)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def register(sub: Any) -> None:
    """Add ``wiring info``."""
    p = sub.add_parser("info", help="show package versions")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    versions = show_versions()
    if args.json:
        json.dump(versions, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        width = max(map(len, versions))
        for k, v in versions.items():
            sys.stdout.write(f"{k:<{width}}  {v}\n")
    return 0
