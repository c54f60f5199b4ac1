"""The restricted value codec of the sandbox's result channel (shared by both ends).

Decoding never imports, calls or constructs anything but plain Python values and numpy arrays of
numeric dtypes; there is no pickle on the trusted side.
"""

from __future__ import annotations

import math
import re
import struct
import sys
from typing import Any

MAGIC = b"EVR1"
MAX_DEPTH = 64
_ARRAY_KINDS = "biufc"  # bool, signed, unsigned, float, complex: no object, string or void dtypes
_DTYPE_STR = re.compile(r"[<>|][biufc][0-9]{1,2}\Z")
_U32, _U64, _F64 = struct.Struct(">I"), struct.Struct(">Q"), struct.Struct(">d")
_CARRIES = "None, bool, int, float, str, bytes, list, tuple, dict and numpy arrays of numbers"


class CodecError(ValueError):
    """A value cannot be put on, or taken off, the result channel."""


def encode_value(value: Any, *, what: str = "the value") -> bytearray:
    """Encodes a plain value (nested None/bool/int/float/str/bytes/list/tuple/dict, numpy arrays).

    `what` names the value in error messages (e.g. "the return value").
    """
    out = bytearray(MAGIC)
    _encode(value, out, what, 0)
    return out


def encode_ok_message(value: Any) -> bytearray:
    """The child's message {"kind": "ok", "value": value}, with errors naming 'the return value'."""
    out = bytearray(MAGIC) + b"M" + _U64.pack(2)
    for part in ("kind", "ok", "value"):
        _encode(part, out, "", 1)
    _encode(value, out, "the return value", 1)
    return out


def _encode(value: Any, out: bytearray, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CodecError(f"{path} is nested deeper than {MAX_DEPTH} levels (or holds itself)")
    if value is None:
        out += b"N"
    elif isinstance(value, bool):
        out += b"T" if value else b"F"
    elif isinstance(value, int):
        raw = int(value).to_bytes((value.bit_length() + 8) // 8, "big", signed=True)
        out += b"I" + _U32.pack(len(raw)) + raw
    elif isinstance(value, float):
        out += b"D" + _F64.pack(value)
    elif isinstance(value, (str, bytes, bytearray)):
        raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)
        out += (b"S" if isinstance(value, str) else b"B") + _U64.pack(len(raw)) + raw
    elif isinstance(value, (list, tuple)):
        out += (b"L" if isinstance(value, list) else b"U") + _U64.pack(len(value))
        for i, item in enumerate(value):
            _encode(item, out, f"{path}[{i}]", depth + 1)
    elif isinstance(value, dict):
        out += b"M" + _U64.pack(len(value))
        for key, item in value.items():
            _encode(key, out, f"a key of {path}", depth + 1)
            _encode(item, out, f"{path}[{key!r}]", depth + 1)
    else:
        _encode_numpy(value, out, path, depth)


def _encode_numpy(value: Any, out: bytearray, path: str, depth: int) -> None:
    np = sys.modules.get("numpy")  # a value can only be a numpy object if numpy is imported
    if np is not None and type(value) is np.ndarray:
        if value.dtype.kind not in _ARRAY_KINDS or not _DTYPE_STR.match(value.dtype.str):
            raise CodecError(f"{path} is a numpy array of dtype {value.dtype}; only {_CARRIES} can be sent")
        array = value if value.flags.c_contiguous else value.copy(order="C")  # (ascontiguousarray makes 0-d 1-d)
        dtype = array.dtype.str.encode()
        out += b"A" + bytes([len(dtype)]) + dtype + bytes([array.ndim])
        out += struct.pack(f">{array.ndim}Q", *array.shape)
        out += array.tobytes()
    elif np is not None and isinstance(value, np.generic) and value.dtype.kind in "biuf":
        _encode(value.item(), out, path, depth)
    else:
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        hint = " (convert tensors with .float().cpu().numpy())" if kind.startswith("torch.") else ""
        raise CodecError(f"cannot send {path} of type {kind}: the result channel carries {_CARRIES}{hint}")


def decode_value(data: bytes | bytearray | memoryview) -> Any:
    """Decodes what `encode_value` wrote; anything else raises CodecError (never runs code)."""
    view = memoryview(data).cast("B")
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise CodecError("the data is not an encoded value (wrong header)")
    decoder = _Decoder(view, len(MAGIC))
    try:
        value = decoder.value(0)
    except CodecError:
        raise
    except (ValueError, TypeError, OverflowError, struct.error) as exc:
        raise CodecError(f"malformed value at byte {decoder.pos}: {exc}") from None
    if decoder.pos != len(view):
        raise CodecError(f"{len(view) - decoder.pos} bytes follow the encoded value")
    return value


class _Decoder:
    def __init__(self, view: memoryview, pos: int) -> None:
        self.view, self.pos = view, pos

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.view):
            raise CodecError(f"truncated data: {n} bytes wanted at byte {self.pos} of {len(self.view)}")
        self.pos += n
        return self.view[self.pos - n : self.pos]

    def count(self) -> int:
        n: int = _U64.unpack(self.take(8))[0]
        if n > len(self.view) - self.pos:  # every item takes at least one byte
            raise CodecError(f"a count of {n} items exceeds the {len(self.view) - self.pos} bytes left")
        return n

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CodecError(f"data nested deeper than {MAX_DEPTH} levels")
        tag = bytes(self.take(1))
        if tag in (b"N", b"T", b"F"):
            return {b"N": None, b"T": True, b"F": False}[tag]
        if tag == b"I":
            return int.from_bytes(self.take(_U32.unpack(self.take(4))[0]), "big", signed=True)
        if tag == b"D":
            return _F64.unpack(self.take(8))[0]
        if tag == b"S":
            return str(self.take(self.count()), "utf-8", "surrogatepass")
        if tag == b"B":
            return bytes(self.take(self.count()))
        if tag in (b"L", b"U"):
            items = [self.value(depth + 1) for _ in range(self.count())]
            return items if tag == b"L" else tuple(items)
        if tag == b"M":
            return self.mapping(depth)
        if tag == b"A":
            return self.array()
        raise CodecError(f"unknown tag {tag!r} at byte {self.pos - 1}")

    def mapping(self, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for _ in range(self.count()):
            key = self.value(depth + 1)
            if key in result:
                raise CodecError(f"duplicate key {key!r}")
            result[key] = self.value(depth + 1)
        return result

    def array(self) -> Any:
        dtype_str = str(self.take(self.take(1)[0]), "ascii")
        if not _DTYPE_STR.match(dtype_str):
            raise CodecError(f"array dtype {dtype_str!r} is not a numeric dtype")
        ndim = self.take(1)[0]
        if ndim > 64:
            raise CodecError(f"array with {ndim} dimensions")
        shape = struct.unpack(f">{ndim}Q", self.take(8 * ndim))
        import numpy as np

        dtype = np.dtype(dtype_str)
        raw = self.take(math.prod(shape) * dtype.itemsize)
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
