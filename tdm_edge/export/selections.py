"""The token selections an exported graph computes, found by name and declared as extra outputs.

The export names every selection tensor (``tdm_attentive_i``, ``tdm_inattentive_i``, ``tdm_matched_i``,
``tdm_partners_i``, ``tdm_unmatched_i``, ``tdm_clusters_i``; see :func:`tdm_edge.export.verify.record_selections`)
and ships only the logits; the names stay inside the graph. Consumers that need the decisions (INT8 comparison,
a video overlay) find them here and run a copy of the graph with them as outputs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

SELECTION_PATTERN = re.compile(r"^tdm_(attentive|inattentive|matched|partners|unmatched|clusters)_\d+$")


def selection_names(proto) -> list[str]:
    """Names of the selection tensors computed in ``proto``'s graph, in graph order."""
    return [o for n in proto.graph.node for o in n.output if SELECTION_PATTERN.match(o)]


def with_selection_outputs(proto, names: Sequence[str] | None = None):
    """A copy of ``proto`` with the selection tensors (all of them, or ``names``) as extra graph outputs."""
    from .verify import with_outputs

    names = selection_names(proto) if names is None else list(names)
    copy, missing = with_outputs(proto, names)
    if missing:
        raise ValueError(f"selection tensors not found in the graph: {', '.join(missing)}")
    return copy
