"""Makes bm25s, anthropic, openai, pydantic and ray unimportable, as on the GPU machine (put this on PYTHONPATH).

Python's `site` imports `sitecustomize` at start-up; the finder below answers every import of those
packages (or of anything inside them) with ModuleNotFoundError. `device_check.sh` runs its CPU flow
this way, and tests/integration/test_optional_dependencies.py uses it to show that evoagent needs none of them.
"""

import sys

BLOCKED = ("bm25s", "anthropic", "openai", "pydantic", "ray")


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: the GPU machine has no {name})", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
