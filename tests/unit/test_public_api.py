from __future__ import annotations

import evoagent


def test_all_is_sorted_and_complete():
    assert evoagent.__all__ == sorted(evoagent.__all__)
    public = {name for name in vars(evoagent) if not name.startswith("_")} - {"annotations"}
    modules = {name for name in public if type(getattr(evoagent, name)).__name__ == "module"}
    assert set(evoagent.__all__) == (public - modules) | {"llm"}
    for name in evoagent.__all__:
        assert getattr(evoagent, name) is not None
