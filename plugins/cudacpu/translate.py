"""cudacpu's source step: the two CUDA constructs that no C++ macro can express, rewritten into calls of the runtime.

    kernel<T><<<grid, block, shared, stream>>>(args)  ->  ::cudacpu::launch(kernel<T>, grid, block, shared, stream)(args)
    extern __shared__ __align__(16) float s[];        ->  static float* const s = reinterpret_cast<float*>(
                                                              ::cudacpu::dynamicShared());

Comments, strings and character literals are left alone; line breaks are kept, and a ``#line`` directive names the
original file, so compiler messages point into it. ``translate_tree`` copies a kernel's folder (every .cu, .cuh, .h,
.hpp, .inl) rewritten, so launches in headers are covered too; the files in the repository are never changed.

    python3 plugins/cudacpu/translate.py SRC_DIR DST_DIR
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List, Tuple

SUFFIXES = (".cu", ".cuh", ".h", ".hpp", ".inl")

_EXTERN_SHARED = re.compile(
    r"\bextern\s+__shared__\s+(?P<type>[^;\[\]{}()]*?(?:\([^;\[\]{}]*?\)[^;\[\]{}()]*?)*?)\s*\b(?P<name>\w+)"
    r"\s*\[\s*\]\s*;")
_ALIGN = re.compile(r"__align__\s*\(\s*\d+\s*\)|alignas\s*\(\s*\d+\s*\)")


class TranslateError(ValueError):
    """A launch the rewriter cannot parse (unbalanced brackets, no callee)."""


def code_mask(text: str) -> List[bool]:
    """For every character: True when it is code (not in a comment, string or character literal)."""
    mask = [True] * len(text)
    i, n = 0, len(text)
    while i < n:
        two = text[i:i + 2]
        if two == "//":
            end = text.find("\n", i)
            end = n if end < 0 else end
        elif two == "/*":
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
        elif text[i] in "\"'":
            quote, end = text[i], i + 1
            while end < n and text[end] != quote and text[end] != "\n":
                end += 2 if text[end] == "\\" else 1
            end = min(end + 1, n)
        else:
            i += 1
            continue
        for k in range(i, end):
            mask[k] = False
        i = end
    return mask


def _callee_start(text: str, end: int) -> int:
    """Start of the kernel expression that ends at ``end`` (``ns::kernel<T, 4>``), scanning backwards."""
    i = end
    while True:
        while i > 0 and text[i - 1].isspace():
            i -= 1
        if i > 0 and text[i - 1] == ">":  # template arguments: back to the matching '<'
            depth, i = 0, i - 1
            while i >= 0:
                if text[i] == ")":  # (4 > 2) inside template arguments
                    parens = 0
                    while i >= 0:
                        parens += {")": 1, "(": -1}.get(text[i], 0)
                        if parens == 0:
                            break
                        i -= 1
                elif text[i] == ">":
                    depth += 1
                elif text[i] == "<":
                    depth -= 1
                    if depth == 0:
                        break
                i -= 1
            if i < 0:
                raise TranslateError("unbalanced template arguments before <<<")
            while i > 0 and text[i - 1].isspace():
                i -= 1
        start = i
        while i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_"):
            i -= 1
        if i == start:
            raise TranslateError("no kernel name before <<<")
        j = i
        while j > 0 and text[j - 1].isspace():
            j -= 1
        if text[j - 2:j] == "::":
            i = j - 2
            k = i
            while k > 0 and text[k - 1].isspace():
                k -= 1
            if k == 0 or not (text[k - 1].isalnum() or text[k - 1] in "_>"):
                return i  # a leading ::
            continue
        return i


def _config_end(text: str, start: int) -> int:
    """Index of the ``>>>`` that closes a launch configuration beginning at ``start`` (outside brackets)."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(">>>", i):
            return i
        i += 1
    raise TranslateError("<<< without a matching >>>")


def rewrite_launches(text: str) -> str:
    """``k<<<cfg>>>(args)`` -> ``::cudacpu::launch(k, cfg)(args)``, in code only."""
    mask = code_mask(text)
    edits: List[Tuple[int, int, str]] = []
    pos = 0
    while True:
        at = text.find("<<<", pos)
        if at < 0:
            break
        if not mask[at]:
            pos = at + 3
            continue
        start = _callee_start(text, at)
        close = _config_end(text, at + 3)
        callee = text[start:at].strip()
        edits.append((start, close + 3, "::cudacpu::launch(" + callee + ", " + text[at + 3:close] + ")"))
        pos = close + 3
    for start, end, new in reversed(edits):
        text = text[:start] + new + text[end:]
    return text


def rewrite_extern_shared(text: str) -> str:
    """``extern __shared__ T name[];`` -> a pointer to the block's dynamic shared memory."""
    mask = code_mask(text)

    def one(m: re.Match) -> str:
        if not mask[m.start()]:
            return m.group(0)
        ctype = " ".join(_ALIGN.sub(" ", m.group("type")).split())
        return "static {t}* const {n} = reinterpret_cast<{t}*>(::cudacpu::dynamicShared());".format(
            t=ctype, n=m.group("name"))

    return _EXTERN_SHARED.sub(one, text)


def translate(text: str, origin: str = "") -> str:
    """The whole source step for one file; ``origin`` (the original path) goes into a #line directive."""
    out = rewrite_launches(rewrite_extern_shared(text))
    if origin:
        out = '#line 1 "{}"\n'.format(origin.replace("\\", "/")) + out
    return out


def translate_tree(src: Path, dst: Path) -> List[Path]:
    """Copies every CUDA/C++ source and header of ``src`` (not recursive) into ``dst``, translated."""
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(src.iterdir()):
        if path.is_file() and path.suffix in SUFFIXES:
            out = dst / path.name
            out.write_text(translate(path.read_text(), str(path.resolve())))
            written.append(out)
    return written


def main(argv: List[str]) -> int:
    if len(argv) != 2 or not Path(argv[0]).is_dir():
        print("usage: translate.py SRC_DIR DST_DIR", file=sys.stderr)
        return 2
    try:
        for path in translate_tree(Path(argv[0]), Path(argv[1])):
            print(path)
    except (TranslateError, OSError, UnicodeDecodeError) as exc:
        print("translate.py: {}".format(exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
