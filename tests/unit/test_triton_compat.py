"""The fixes to Triton 3.6's interpreter: applied only where the imported Triton lacks them, and each one
does what Triton 3.9 does (the device-image CPU flow in CI runs them under Triton 3.6 and NumPy 2.5)."""

from __future__ import annotations

import numpy as np
import pytest
import triton  # noqa: F401  (patch_interpreter looks at the imported Triton)

from evoagent.untrusted import triton_compat


class _Scope:
    def __init__(self) -> None:
        self.attrs: dict[str, object] = {}

    def set_attr(self, obj: object, name: str, value: object) -> None:
        self.attrs[name] = value


class _Handle:
    def __init__(self, data: np.ndarray) -> None:
        self.data = data


class _Tensor:
    def __init__(self, data: np.ndarray) -> None:
        self.handle = _Handle(data)


def test_a_triton_that_has_both_fixes_is_left_as_it_is() -> None:
    from triton.runtime import autotuner, interpreter

    if "int(self.handle.data)" in triton_compat._source(interpreter._patch_lang_tensor):
        pytest.skip("this Triton's interpreter needs the fix (the device-image flow checks it)")
    bench = autotuner.Autotuner._bench
    assert triton_compat.patch_interpreter() == []
    assert autotuner.Autotuner._bench is bench


def test_the_index_fix_turns_a_one_element_array_of_any_rank_into_an_int() -> None:
    def original(tensor: object, scope: _Scope) -> None:
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data))

    scope = _Scope()
    triton_compat._index_fixed(original)(_Tensor, scope)
    index = scope.attrs["__index__"]
    assert index(_Tensor(np.array([7], dtype=np.int32))) == 7
    assert index(_Tensor(np.array([[3]]))) == 3 and index(_Tensor(np.array(5))) == 5
    with pytest.raises(ValueError):
        index(_Tensor(np.array([1, 2])))


def test_the_autotuner_fix_times_nothing_under_the_interpreter_and_defers_on_a_gpu(monkeypatch) -> None:
    calls = []

    def original(self: object, *args: object, config: object, **meta: object) -> list[float]:
        calls.append(config)
        return [1.0, 0.9, 1.1]

    bench = triton_compat._bench_skipped_when_interpreting(original)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert bench(object(), 1, config="c1") == [0.0, 0.0, 0.0] and calls == []
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert bench(object(), 1, config="c1") == [1.0, 0.9, 1.1] and calls == ["c1"]
