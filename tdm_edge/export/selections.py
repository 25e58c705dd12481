"""Token selections as extra graph outputs: the code lives on the device side, :mod:`tdm_edge.runners.selections`
(``tdm-edge run --show-tokens`` adds them with onnx alone); re-exported here for the export's own use."""

from __future__ import annotations

from ..metadata import METADATA_KEY
from ..runners.selections import (SELECTION_RE, add_selection_outputs, graph_selections, output_selections,
                                  with_outputs)

__all__ = ["METADATA_KEY", "SELECTION_RE", "add_selection_outputs", "graph_selections", "output_selections",
           "with_outputs"]
