"""Reading the ``tdm_edge`` metadata an export writes into its ``.onnx`` file, and a build into its sidecar ``.json``.

Device side: no torch, and the ONNX file is read without the ``onnx`` package. A ``ModelProto`` is a sequence of
protobuf fields; :func:`onnx_metadata_props` walks them with seeks, reading only ``metadata_props`` (field 14,
``StringStringEntryProto``: key = 1, value = 2) and skipping the graph and its initializers unread, so a Jetson needs
neither onnx nor numpy 2 for it, and a 2 GB model costs a handful of reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO, Dict, Optional, Tuple

from .errors import UsageError

METADATA_KEY = "tdm_edge"
INPUT_NAME, OUTPUT_NAME = "input", "logits"

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
_MODEL_IR_VERSION, _MODEL_GRAPH, _MODEL_METADATA_PROPS = 1, 7, 14
# ModelProto's fields and their wire types (onnx.proto3); a field of another type means "not an ONNX model"
_MODEL_FIELDS = {1: _VARINT, 2: _LEN, 3: _LEN, 4: _LEN, 5: _VARINT, 6: _LEN, 7: _LEN, 8: _LEN, 14: _LEN, 20: _LEN,
                 25: _LEN, 26: _LEN}


class NotOnnx(UsageError):
    """The file is not a serialized ONNX ``ModelProto`` (or is cut short)."""


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    """The varint at ``data[pos:]`` and the position after it."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise NotOnnx("bad varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def _read_varint(f: BinaryIO) -> Optional[int]:
    """The next varint of ``f``; ``None`` at the end of the file."""
    value = shift = 0
    while True:
        byte = f.read(1)
        if not byte:
            if shift:
                raise NotOnnx("cut short inside a varint")
            return None
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise NotOnnx("bad varint")


def parse_entry(data: bytes) -> Tuple[str, str]:
    """``(key, value)`` of a serialized ``StringStringEntryProto`` (unknown fields skipped)."""
    fields = {1: "", 2: ""}
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == _LEN:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise NotOnnx("metadata entry cut short")
            if number in fields:
                fields[number] = data[pos:pos + size].decode("utf-8", errors="replace")
            pos += size
        elif wire == _VARINT:
            _, pos = _varint(data, pos)
        elif wire in (_FIXED64, _FIXED32):
            pos += 8 if wire == _FIXED64 else 4
        else:
            raise NotOnnx(f"wire type {wire} in a metadata entry")
    return fields[1], fields[2]


def onnx_metadata_props(path: str | os.PathLike) -> Dict[str, str]:
    """``ModelProto.metadata_props`` of an ``.onnx`` file as a dict (later keys win, as in onnx's own reading).

    Raises :class:`NotOnnx` for a file that is not an ONNX model, ``OSError`` when it cannot be read.
    """
    props: Dict[str, str] = {}
    seen = set()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while True:
            tag = _read_varint(f)
            if tag is None:
                break
            number, wire = tag >> 3, tag & 7
            if number == 0 or _MODEL_FIELDS.get(number, wire) != wire:
                raise NotOnnx(f"field {number} has wire type {wire}")
            seen.add(number)
            if wire == _VARINT:
                if _read_varint(f) is None:
                    raise NotOnnx("cut short")
            elif wire in (_FIXED64, _FIXED32):
                f.seek(8 if wire == _FIXED64 else 4, os.SEEK_CUR)
            elif wire == _LEN:
                length = _read_varint(f)
                if length is None or f.tell() + length > size:
                    raise NotOnnx(f"field {number} runs past the end of the file")
                if number == _MODEL_METADATA_PROPS:
                    key, value = parse_entry(f.read(length))
                    props[key] = value
                else:
                    f.seek(length, os.SEEK_CUR)  # the graph and its initializers: skipped, never read
            else:
                raise NotOnnx(f"wire type {wire}")
            if f.tell() > size:
                raise NotOnnx("cut short")
    if _MODEL_IR_VERSION not in seen or _MODEL_GRAPH not in seen:
        raise NotOnnx("no ir_version or no graph")
    return props


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``tdm_edge`` metadata of an exported ``.onnx`` file, or of its sidecar ``.json``."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        props = onnx_metadata_props(path)
    except NotOnnx:
        raise UsageError(f"{path} is not an ONNX model") from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:  # a sidecar that is not JSON
        raise UsageError(f"cannot read {path}: {err}") from None
    if METADATA_KEY not in props:
        raise UsageError(f"{path} has no {METADATA_KEY!r} metadata; was it exported by tdm-edge export?")
    try:
        return json.loads(props[METADATA_KEY])
    except ValueError:
        raise UsageError(f"{path}: its {METADATA_KEY!r} metadata is not JSON") from None


def engine_metadata(path: str | os.PathLike) -> dict:
    """The export metadata a TensorRT engine's sidecar (``ENGINE.json`` or ``ENGINE.engine.json``) carries."""
    for side in (Path(os.fspath(path) + ".json"), Path(path).with_suffix(".json")):
        if side.is_file():
            record = read_metadata(side)
            return record.get("metadata", record)  # tdm-edge build's sidecar keeps the ONNX metadata whole
    raise UsageError(f"no metadata for {path}: expected {os.fspath(path)}.json beside it (tdm-edge build writes it)")


def model_metadata(path: str | os.PathLike) -> dict:
    """The metadata of an ``.onnx`` (its own) or a TensorRT engine (``.engine``/``.plan``/``.trt``: its sidecar)."""
    if Path(path).suffix.lower() in (".engine", ".plan", ".trt"):
        return engine_metadata(path)
    return read_metadata(path)
