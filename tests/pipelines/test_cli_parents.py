"""--anatomy, --anatomy-seed and --rule come from one shared parent parser in every command."""

from __future__ import annotations

import argparse

import pytest

from pipelines.cli import build_parser


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _option(p: argparse.ArgumentParser, flag: str) -> tuple[object, ...]:
    (a,) = (a for a in p._actions if flag in a.option_strings)
    return (a.dest, a.required, a.default, a.type, a.metavar, a.help)


@pytest.mark.parametrize(
    ("flag", "commands"),
    [
        ("--anatomy", ("simulate", "connectome", "analyze")),
        ("--anatomy-seed", ("simulate", "connectome", "analyze")),
        ("--rule", ("simulate", "connectome")),
    ],
)
def test_shared_options_are_identical(flag: str, commands: tuple[str, ...]) -> None:
    subs = _subparsers()
    options = {_option(subs[c], flag) for c in commands}
    assert len(options) == 1


def test_bad_anatomy_seed_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["connectome", "--anatomy", "tiny", "--anatomy-seed", "-1"])
    assert info.value.code == 2
    assert "--anatomy-seed" in capsys.readouterr().err
