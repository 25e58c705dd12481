"""`tdm-edge --help` and every subcommand's: a description, every option's help naming its default, no reST
markup, and no command named that does not exist."""

import argparse
import re

import pytest

from tdm_edge import cli


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


PARSER = cli.build_parser()
COMMANDS = _subparsers(PARSER)


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def test_every_command_is_listed_and_described_in_one_line():
    assert set(COMMANDS) >= {"models", "flops", "check", "export", "build", "bench", "tune", "calibrate", "compare",
                             "run", "make-dataset", "train", "eval"}
    for name, parser in COMMANDS.items():
        assert parser.description, f"{name} has no description"
        assert name in PARSER.format_help()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_that_names_its_default(name):
    parser = COMMANDS[name]
    formatter = parser._get_formatter()
    for action in _options(parser):
        label = "/".join(action.option_strings) or action.dest
        assert action.help, f"{name} {label}: no help"
        if cli.shows_default(action):
            text = formatter._get_help_string(action) % {}
            forms = _typed_forms(action.default)
            assert any(f in text for f in forms), f"{name} {label}: default {action.default!r} not in {text!r}"
            assert "default" in text.lower() or any(text.rstrip().endswith(f"({f})") for f in forms)


def _typed_forms(value) -> set[str]:
    """The ways a help text may write a default: ``10.0`` as 10.0 or 10, ``(0.6, 1.0)`` as 0.6,1.0 or 0.6,1."""
    if isinstance(value, (tuple, list)):
        return {cli.default_text(value), ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)}
    return {str(value), f"{value:g}"} if isinstance(value, float) else {str(value)}


def test_the_formatter_appends_a_missing_default_and_keeps_a_given_one():
    parser = cli._Parser(prog="t")
    parser.add_argument("--runs", type=int, default=20, help="rounds")
    parser.add_argument("--batch", default=(1, 8), help="batch sizes (default 1,8)")
    parser.add_argument("--ratio", type=float, default=0.25, help="clusters per token (0.25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flag", action="store_true", help="a switch")
    text = " ".join(parser.format_help().split())
    assert "rounds (default 20)" in text
    assert "batch sizes (default 1,8)" in text and "(default 1,8) (default" not in text
    assert "clusters per token (0.25)" in text and "(0.25) (default" not in text
    assert "--seed SEED default 0" in text  # 0 is a default too (not falsy-skipped)
    assert "a switch" in text and "a switch (default" not in text


def _all_help() -> str:
    return PARSER.format_help() + "".join(p.format_help() for p in COMMANDS.values())


def test_help_has_no_rest_markup_and_names_only_real_commands():
    text = _all_help()
    assert "``" not in text and ":class:" not in text and ":func:" not in text
    named = set(re.findall(r"tdm-edge ([a-z][a-z-]*)", text))
    assert named <= set(COMMANDS), f"help names commands that do not exist: {named - set(COMMANDS)}"
    assert "quantize" not in text  # the command is calibrate


def test_error_messages_name_calibrate_not_quantize():
    import pathlib

    import tdm_edge

    root = pathlib.Path(tdm_edge.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if "tdm-edge quantize" in p.read_text()]
    assert offenders == []
