"""``tdm-edge doctor``: registered through :data:`tdm_edge.cli.STAGE_COMMANDS` (light: the probes load when it runs)."""

from __future__ import annotations

import argparse
import json


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .report import as_json, gather, render, verdicts

    facts = gather()
    results = verdicts(facts)
    print(json.dumps(as_json(facts, results), indent=1) if args.json else render(facts, results))
    return 0


def add_commands(sub, parser_class: type) -> None:
    """Add ``doctor`` to the ``tdm-edge`` subcommands."""
    p = sub.add_parser("doctor", help="this machine for a bug report: Python, numpy, OpenCV, TensorRT, CUDA, "
                                      "JetPack, power mode, and which commands can run here (with the fix)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the screen")
    p.set_defaults(func=_cmd_doctor)
