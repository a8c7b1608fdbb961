"""``wiring rules list|check``: the installed wiring rules and their contract checks.

``wiring rules list [--json]`` shows every rule with its distribution, version, level, synapse
model and parameters; a plugin that fails to load is listed as ``broken`` with the reason. The
text listing shows each rule's docstring summary as plain text (no reST markup); ``--json``
keeps it as written.
``wiring rules check NAME`` loads the rule, checks the contract and runs the numeric
self-check on toy tables (shapes, non-negative rates, no synapses without overlap, purity,
deterministic draws, JSON identity). Exit status 0 when everything passes, 1 when the rule is
unknown, broken or fails a check, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from pipelines.commands._argtypes import non_negative_int

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add ``wiring rules list`` and ``wiring rules check``."""
    p = sub.add_parser(
        "rules",
        help="list and check wiring rules (built-in and plugins)",
        description="List the installed wiring rules or check one against the rule contract.",
    )
    rsub = p.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    p.set_defaults(handler=_usage(p))

    lst = rsub.add_parser("list", help="list installed rules and their parameters")
    lst.add_argument("--json", action="store_true", help="print JSON (one object per rule)")
    lst.set_defaults(handler=_run_list)

    chk = rsub.add_parser("check", help="check one rule against the contract (numeric self-check)")
    chk.add_argument("name", metavar="NAME", help="rule name, as shown by `wiring rules list`")
    chk.add_argument("--seed", type=non_negative_int, default=0, help="seed of the toy tables (default 0)")
    chk.set_defaults(handler=_run_check)


def _usage(parser: argparse.ArgumentParser) -> Any:
    def handler(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return handler


def _fmt_bound(v: float) -> str:
    return "inf" if math.isinf(v) and v > 0 else "-inf" if math.isinf(v) else f"{v:g}"


def _run_list(args: argparse.Namespace) -> int:
    from pipelines.commands._plaintext import plain_text
    from wiring.rules.registry import list_rules

    infos = list_rules(include_broken=True)
    if args.json:
        json.dump([i.to_dict() for i in infos], sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    for info in infos:
        head = f"{info.name}  ({info.distribution} {info.version})"
        if info.status != "ok":
            sys.stdout.write(f"{head}  BROKEN\n    {info.error}\n")
            continue
        sys.stdout.write(f"{head}  level={info.level} synapses={info.synapses}\n")
        if info.summary:
            sys.stdout.write(f"    {plain_text(info.summary)}\n")
        for p in info.params:
            unit = f" {p.unit}" if p.unit else ""
            sys.stdout.write(
                f"    {p.name:<18} default {p.default:g}{unit}, range [{p.low:g}, {p.high:g}], "
                f"domain [{_fmt_bound(p.domain[0])}, {_fmt_bound(p.domain[1])}]\n"
            )
    return 0


def _run_check(args: argparse.Namespace) -> int:
    from wiring.rules.registry import rule_provenance
    from wiring.testing.selfcheck import self_check

    passed = self_check(args.name, seed=args.seed)
    prov = rule_provenance(args.name)
    sys.stdout.write(
        f"ok: {args.name} ({prov['distribution']} {prov['version']}) passed "
        f"{len(passed)} checks: {', '.join(passed)}\n"
    )
    return 0
