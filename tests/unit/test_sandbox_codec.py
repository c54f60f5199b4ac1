"""The result channel's restricted codec: plain values and numeric arrays round trip; nothing else decodes."""

from __future__ import annotations

import math
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from evoagent.sandbox import CodecError, decode_value, encode_value

_DTYPES = st.sampled_from(["?", "i1", "<i4", ">i8", "u1", "<u2", "<f2", "<f4", ">f8", "<c8", "<c16"]).map(np.dtype)
_ARRAYS = hnp.arrays(dtype=_DTYPES, shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
_SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**200), max_value=2**200)
            | st.floats(allow_nan=True) | st.text() | st.binary())
_KEYS = st.none() | st.booleans() | st.integers() | st.text() | st.binary()
_VALUES = st.recursive(
    _SCALARS | _ARRAYS,
    lambda children: st.lists(children, max_size=4) | st.lists(children, max_size=4).map(tuple)
    | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    """Equal in type and value, NaN included, arrays compared bit for bit with their dtype and shape."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=150, deadline=None)
@given(_VALUES)
def test_plain_values_and_numeric_arrays_round_trip(value: Any) -> None:
    assert _same(decode_value(encode_value(value)), value)


@settings(max_examples=50, deadline=None)
@given(_VALUES)
def test_every_strict_prefix_of_an_encoding_is_refused(value: Any) -> None:
    data = bytes(encode_value(value))
    for cut in sorted({len(data) // 2, len(data) - 1}):
        with pytest.raises(CodecError):
            decode_value(data[:cut])


def test_non_contiguous_and_numpy_scalar_values_are_sent_as_plain_equivalents() -> None:
    grid = np.arange(20, dtype=np.int64).reshape(4, 5)[:, ::2]
    assert np.array_equal(decode_value(encode_value(grid)), grid)
    assert decode_value(encode_value([np.float32(1.5), np.int16(-3), np.bool_(True)])) == [1.5, -3, True]
    assert math.isnan(decode_value(encode_value(float("nan"))))


@pytest.mark.parametrize("value", [
    object(),
    {1, 2},
    np.array(["a", "b"]),
    np.array([object()], dtype=object),
    np.arange(3).view(np.recarray),
    1 + 2j,
])
def test_values_outside_the_plain_set_are_refused_with_their_type(value: Any) -> None:
    with pytest.raises(CodecError, match="cannot send|numpy array of dtype"):
        encode_value(value, what="the return value")


def test_a_value_that_holds_itself_is_refused() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(CodecError, match="nested deeper"):
        encode_value(loop)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_a_crafted_pickle_is_refused_without_running_it(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    crafted = pickle.dumps(_Exploit(marker), protocol=protocol)
    with pytest.raises(CodecError):
        decode_value(crafted)
    with pytest.raises(CodecError):
        decode_value(b"EVR1" + crafted)  # behind our header too
    assert not marker.exists()


@pytest.mark.parametrize(("data", "message"), [
    (b"EVR1N" + b"N", "follow the encoded value"),
    (b"EVR1Z", "unknown tag"),
    (b"EVR1L" + struct.pack(">Q", 2**60), "exceeds"),
    (b"EVR1A" + bytes([3]) + b"|O8" + bytes([1]) + struct.pack(">Q", 1) + b"\0" * 8, "not a numeric dtype"),
    (b"EVR1A" + bytes([3]) + b"<f8" + bytes([1]) + struct.pack(">Q", 2**40), "truncated"),
    (b"EVR1M" + struct.pack(">Q", 1) + b"L" + struct.pack(">Q", 0) + b"N", "malformed"),
    (b"EVR1M" + struct.pack(">Q", 2) + b"TNTN", "duplicate key"),
    ((b"EVR1" + (b"L" + struct.pack(">Q", 1)) * 100 + b"N"), "nested deeper"),
])
def test_malformed_data_is_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode_value(data)
