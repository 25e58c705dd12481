"""Error lines: one line, capped, with the count of what was cut."""

import re

from tdm_edge.errors import MAX_LINE, capped


def test_long_messages_are_cut_with_the_count():
    text = "labels do not match: " + ", ".join(f"class_{i}" for i in range(1000))  # ~11,000 characters
    line = capped(text)
    assert len(line) <= MAX_LINE
    kept, cut = re.fullmatch(r"(.*) \.\.\. \((\d+) more characters\)", line).groups()
    assert text.startswith(kept) and int(cut) == len(text) - len(kept)  # the count is exact


def test_short_messages_become_one_line_unchanged():
    assert capped("cannot read x.onnx:\n  truncated") == "cannot read x.onnx: truncated"
    assert capped("a" * MAX_LINE) == "a" * MAX_LINE
