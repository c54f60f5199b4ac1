from __future__ import annotations

import subprocess
import sys


def test_import_has_no_heavy_side_effects():
    heavy = ('torch', 'triton', 'anthropic', 'plotly', 'rich', 'pandas', 'IPython', 'evoagent.report')
    code = f"import sys, evoagent; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
