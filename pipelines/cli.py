"""The ``wiring`` command line: argparse sub-commands, logging and exit codes.

Exit codes: 0 success; 1 user, data or environment error (one line on stderr, traceback with
``--debug``): bad arguments or files, a corrupt store, a plugin rule that raises or breaks its
contract, a full disk or any other operating-system error; 2 usage error (argparse); 3 internal
error (an exception nobody anticipated: one line saying so, ``--debug`` for the traceback to
report); 130 interrupted. Each command group lives in :mod:`pipelines.commands` and registers
itself.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

__all__ = ["COMMAND_GROUPS", "EXIT_INTERNAL", "EXIT_USER", "main"]

#: Exit status of a user, data or environment error (one line on stderr).
EXIT_USER = 1
#: Exit status of an unexpected exception, i.e. a bug (one line on stderr; ``--debug`` shows it).
EXIT_INTERNAL = 3

#: Modules whose exceptions mean that stored bytes could not be decoded (a damaged file).
_DECODE_MODULES = ("numcodecs", "zarr.codecs", "zarr.core.codec_pipeline", "blosc", "zstandard")
#: Argument names that hold the inputs a command reads (named when a stored chunk is damaged).
_INPUT_ARGS = ("store", "posterior", "anatomy", "source", "measurements")
#: Argument names that hold the outputs a command writes (named when the OS refuses a write).
_OUTPUT_ARGS = ("out", "sonata")

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
        print(f"wiring: error: {one_line(str(err)) or type(err).__name__}", file=sys.stderr)
        return EXIT_USER
    except OSError as err:  # disk full, quota, read-only file system, I/O error, ...
        if args.debug:
            raise
        print(f"wiring: error: {os_error_line(err, args)}", file=sys.stderr)
        return EXIT_USER
    except MemoryError:
        if args.debug:
            raise
        print(
            "wiring: error: out of memory; use a smaller problem (fewer simulations, smaller "
            "chunks or model) or a machine with more memory",
            file=sys.stderr,
        )
        return EXIT_USER
    except Exception as err:
        if args.debug:
            raise
        if _raised_by_decoder(err):
            print(f"wiring: error: {_decode_error_line(err, args)}", file=sys.stderr)
            return EXIT_USER
        print(
            f"wiring: internal error: {type(err).__name__}: {one_line(str(err))} (this is a "
            f"bug; rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def one_line(text: str) -> str:
    """``text`` with line breaks and runs of blanks collapsed to single spaces."""
    return " ".join(text.split())


def _arg_paths(args: argparse.Namespace, names: Sequence[str]) -> list[str]:
    out = []
    for name in names:
        value = getattr(args, name, None)
        if isinstance(value, str | Path) and str(value):
            out.append(str(value))
    return out


def os_error_line(err: OSError, args: argparse.Namespace) -> str:
    """One line naming the path and the operating-system error (e.g. a full disk).

    The path is the one the error carries; an error raised by a bare ``write`` carries none,
    and then the command's outputs are named.
    """
    reason = err.strerror or one_line(str(err)) or type(err).__name__
    code = errno.errorcode.get(err.errno or 0, "")
    if code:
        reason = f"{reason} ({code})"
    if err.filename is not None:
        where = str(err.filename)
        if err.filename2 is not None:
            where += f" -> {err.filename2}"
    else:
        where = "while writing " + (" or ".join(_arg_paths(args, _OUTPUT_ARGS)) or "the output")
    hint = ""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "; free some space (or write elsewhere) and run the command again"
    elif err.errno == errno.EROFS:
        hint = "; write to another folder"
    return f"{where}: {reason}{hint}"


def _raised_by_decoder(err: BaseException) -> bool:
    """Whether ``err`` (or its cause) comes from a compression or checksum codec."""
    seen: set[int] = set()
    exc: BaseException | None = err
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        for frame, _ in traceback.walk_tb(exc.__traceback__):
            module = str(frame.f_globals.get("__name__", ""))
            if module.startswith(_DECODE_MODULES):
                return True
        exc = exc.__cause__ or exc.__context__
    return False


def _decode_error_line(err: BaseException, args: argparse.Namespace) -> str:
    inputs = " or ".join(_arg_paths(args, _INPUT_ARGS)) or "an input store"
    return (
        f"a stored chunk of {inputs} could not be decoded ({type(err).__name__}: "
        f"{one_line(str(err))}); the file is damaged: recreate it"
    )
