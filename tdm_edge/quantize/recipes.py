"""Calibration recipes: small JSON files in ``calibration/`` (method, percentile, count, excluded nodes).

``calibration/<model name>.json`` is used for a model of that name (``meta["model"]["name"]``), else
``calibration/default.json``; ``--recipe FILE`` names one explicitly. A recipe only says *what* to quantize and how
to calibrate; the fixed rules (int8, symmetric, per-channel weights, MatMul/Gemm inputs only, merge path in float)
live in :mod:`tdm_edge.quantize.calibrate`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import UsageError

METHODS = ("minmax", "entropy", "percentile")
# calibration/ beside the package in a source checkout; an installed package falls back to DEFAULT below
CALIBRATION_DIR = Path(__file__).resolve().parents[2] / "calibration"


@dataclass(frozen=True)
class Recipe:
    """How one model is calibrated.

    Args:
        name: the recipe's name (its file's stem).
        method: ``minmax``, ``entropy`` or ``percentile`` (ONNX Runtime's calibrators).
        percentile: for ``percentile``: the percentile of |x| that sets the range.
        num: calibration images to use by default.
        quantize_attention: also quantize the two attention products (Q K^T and A V), not only the linear layers.
        float_ranking: keep the linear layers whose outputs rank the tokens (the qkv of each reducing block) in
            float, so that the class attention of the pruning stages is computed from float q and k.
        exclude_nodes: node names kept in float on top of the merge path (exact names).
    """

    name: str = "default"
    description: str = ""
    method: str = "minmax"
    percentile: float = 99.999
    num: int = 512
    quantize_attention: bool = True
    float_ranking: bool = False
    exclude_nodes: tuple[str, ...] = field(default_factory=tuple)
    source: str = "built-in"  # the file it was read from

    def as_dict(self) -> dict:
        return {**asdict(self), "exclude_nodes": list(self.exclude_nodes)}


DEFAULT = Recipe()


def parse_recipe(data: dict, source: str) -> Recipe:
    """A :class:`Recipe` from a JSON object; unknown keys or bad values raise :class:`UsageError`."""
    if not isinstance(data, dict):
        raise UsageError(f"recipe {source}: expected a JSON object")
    known = {f.name for f in fields(Recipe)} - {"source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"recipe {source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    recipe = Recipe(**{**data, "exclude_nodes": tuple(data.get("exclude_nodes", ())), "source": source})
    if recipe.method not in METHODS:
        raise UsageError(f"recipe {source}: method {recipe.method!r}; choose one of {', '.join(METHODS)}")
    if not 0.0 < recipe.percentile <= 100.0:
        raise UsageError(f"recipe {source}: percentile must be in (0, 100], got {recipe.percentile}")
    if not isinstance(recipe.num, int) or recipe.num < 1:
        raise UsageError(f"recipe {source}: num must be a positive integer, got {recipe.num!r}")
    return recipe


def read_recipe(path: str | os.PathLike) -> Recipe:
    """Read a recipe file; a missing or malformed file raises :class:`UsageError`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise UsageError(f"cannot read recipe {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise UsageError(f"recipe {path} is not valid JSON: {err}") from None
    return parse_recipe(data, os.fspath(path))


def find_recipe(model_name: str | None, directory: Path = CALIBRATION_DIR) -> Recipe:
    """The recipe for ``model_name`` (``tdm_`` prefix ignored) in ``directory``, else its default, else built-in."""
    names = [model_name.removeprefix("tdm_")] if model_name else []
    for stem in [*names, "default"]:
        path = directory / f"{stem}.json"
        if path.is_file():
            return read_recipe(path)
    return DEFAULT
