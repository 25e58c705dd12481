"""Every numeric option of every subcommand, audited as a class: refused while parsing (exit 2, one line, before
any work) when NaN, infinite, negative where meaningless, or beyond a stated bound. New options inherit the rule:
a plain ``type=int`` / ``type=float`` fails this test."""

from __future__ import annotations

import argparse
import re

import pytest

from tdm_edge.cli import build_parser, main
from tdm_edge.limits import MAX_BATCH, MAX_FRAME_SIDE, MAX_IMG_SIZE

NOT_NUMBERS = ("nan", "NaN", "inf", "-inf", "1e400", "", "x")


def typed_options():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, subparser in sub.choices.items():
        for action in subparser._actions:
            if action.type is not None:
                yield command, action


OPTIONS = list(typed_options())
IDS = [f"{c} {a.option_strings[0] if a.option_strings else a.dest}" for c, a in OPTIONS]


def test_there_are_options_to_audit():
    assert len(OPTIONS) > 60 and {c for c, _ in OPTIONS} >= {"run", "bench", "tune", "train", "build", "export"}


@pytest.mark.parametrize("command,action", OPTIONS, ids=IDS)
def test_no_bare_int_or_float(command, action):
    assert action.type not in (int, float), "use tdm_edge.args.in_range (or a named type) with bounds"


@pytest.mark.parametrize("command,action", OPTIONS, ids=IDS)
def test_non_numbers_and_non_finite_values_are_refused(command, action):
    for text in NOT_NUMBERS:
        with pytest.raises((argparse.ArgumentTypeError, ValueError)):
            action.type(text)


BOUNDED = [(c, a) for c, a in OPTIONS if getattr(a.type, "bounds", None)]


@pytest.mark.parametrize("command,action", BOUNDED, ids=[f"{c} {a.option_strings[0]}" for c, a in BOUNDED])
def test_bounds_are_stated_and_enforced(command, action):
    kind, low, high, above = action.type.bounds
    assert high is not None, "every number has an upper bound (memory, a C int, or what the option means)"
    step = 1 if kind is int else max(abs(high), 1.0) * 1e-6
    assert action.type(str(high)) == high
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(str(high))):  # the message states the bound
        action.type(str(high + step))
    below = low if above else low - step
    with pytest.raises(argparse.ArgumentTypeError):
        action.type(str(below))
    if not above:
        assert action.type(str(low)) == low


# sizes that allocate memory: bounded by the limits the docs state (README / limits.py)
SIZE_BOUNDS = {("run", "--input-width"): MAX_FRAME_SIDE, ("run", "--input-height"): MAX_FRAME_SIDE,
               ("make-dataset", "--img-size"): MAX_IMG_SIZE, ("bench", "--img-size"): MAX_IMG_SIZE,
               ("train", "--batch-size"): MAX_BATCH, ("eval", "--batch-size"): MAX_BATCH,
               ("calibrate", "--batch"): MAX_BATCH, ("export", "--batch"): MAX_BATCH}


@pytest.mark.parametrize("key", sorted(SIZE_BOUNDS), ids=" ".join)
def test_memory_sizes_have_the_documented_bound(key):
    action = next(a for c, a in OPTIONS if c == key[0] and key[1] in a.option_strings)
    assert action.type.bounds[2] == SIZE_BOUNDS[key]


@pytest.mark.parametrize("argv", [
    ["run", "synthetic://", "--input-width", "100000", "--headless"],
    ["make-dataset", "/tmp/never-made", "--img-size", "100000"],
    ["bench", "--batch", "1000000"],
    ["tune", "--target-fps", "nan", "-o", "x.onnx"],
    ["tune", "--runs", "0", "--target-fps", "30", "-o", "x.onnx"],
    ["run", "synthetic://", "--input-rate", "nan", "--headless"],
    ["run", "synthetic://", "--input-loop", "-5", "--headless"],
    ["train", "--data", "d", "--lr", "nan"],
])
def test_the_reported_cases_fail_while_parsing(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: argument" in err, err
