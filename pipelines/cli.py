"""The ``wiring`` command line: argparse sub-commands, logging and exit codes.

Exit codes: 0 success, 1 user or data error (one line on stderr, traceback with ``--debug``),
2 usage error. Each command group lives in :mod:`pipelines.commands` and registers itself.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["COMMAND_GROUPS", "main"]

#: Command-group modules under ``pipelines.commands``, in the order ``--help`` lists them.
COMMAND_GROUPS: tuple[str, ...] = (
    "run",
    "anatomy",
    "rules",
    "connectome",
    "measurements",
    "simulate",
    "train",
    "analyze",
    "info",
)

#: Exceptions that are the user's or the data's fault: one line, exit status 1.
def _user_errors() -> tuple[type[BaseException], ...]:
    from anatomy.errors import AnatomyError
    from wiring.errors import WiringError

    return (AnatomyError, WiringError, FileNotFoundError, PermissionError, IsADirectoryError)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered command group."""
    parser = argparse.ArgumentParser(
        prog="wiring",
        description="Infer neural wiring rules from paired recordings with simulation-based "
        "inference on a voxelized barrel-cortex model.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        try:
            module = importlib.import_module(f"pipelines.commands.{group}")
        except ModuleNotFoundError as err:
            if err.name == f"pipelines.commands.{group}":
                continue
            raise
        module.register(sub)
    return parser


def _quiet_dask(record: logging.LogRecord) -> bool:
    """Drop dask, distributed and tornado records below WARNING."""
    noisy = record.name.split(".")[0] in ("distributed", "dask", "tornado", "bokeh")
    return not (noisy and record.levelno < logging.WARNING)


def _setup_logging(verbose: int, quiet: int) -> None:
    level = logging.INFO - 10 * verbose + 10 * quiet
    logging.basicConfig(
        level=max(level, logging.DEBUG),
        format="%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s",
        stream=sys.stderr,
    )
    # dask's own INFO messages (worker start-up and shutdown) are noise unless asked for with
    # -vv; distributed sets explicit levels on its loggers, so filter at our handler instead
    if verbose < 2:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_quiet_dask)


def _quiet_third_party_warnings() -> None:
    """Hide deprecation chatter of dependencies that a command-line user cannot act on."""
    import warnings

    warnings.filterwarnings("ignore", message=r"torch\.triangular_solve is deprecated")
    warnings.filterwarnings("ignore", message=r"Capping max_sampling_batch_size")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(args.verbose, args.quiet)
    _quiet_third_party_warnings()
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("wiring: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as err:
        if args.debug:
            raise
        print(f"wiring: error: {err}", file=sys.stderr)
        return 1
