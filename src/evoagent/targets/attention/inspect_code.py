"""The `inspect` tool of the attention target: SASS, PTX or TTGIR excerpts of a version's kernels, with a grep.

`compiled_code` runs in the sandbox child: it compiles the launches the wrapper makes (as the static
report does, no GPU needed) and collects the Triton IR the compile left in the candidate's own
cache. The trusted side (`inspect_text`) disassembles each distinct cubin with the cuobjdump Triton
ships, counts the instructions a kernel engineer reads first, and cuts the listing to the lines
that match the grep.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .static import cubin_digest, sass_mix, tool_path

WHAT = ("sass", "ptx", "ttgir")
_MAX_IR_CHARS = 400_000


def compiled_code(entry: str, configs: list[dict[str, Any]], arch: str, triton_cache: str) -> dict[str, Any]:
    """In the sandbox child: each captured launch's cubin and PTX for `arch`, and the TTGIR files of the cache."""
    from .child import compile_launches

    out = compile_launches(entry, configs, [arch], triton_cache)
    keep = ("kernel", "config", "ok", "error", "line", "cubin", "ptx", "num_warps", "num_stages", "autotune")
    ttgir = {}
    for path in sorted(Path(triton_cache).rglob("*.ttgir")):
        ttgir[f"{path.name} (cache entry {path.parent.name[:10]})"] = path.read_text(errors="replace")[:_MAX_IR_CHARS]
    return {"launches": [{k: r.get(k) for k in keep} for r in out["launches"]],
            "wrapper_errors": out["wrapper_errors"], "ttgir": ttgir}


def disassemble(cubin: bytes, timeout_s: float = 60.0) -> str:
    """cuobjdump --dump-sass of one cubin ('' when Triton ships no cuobjdump)."""
    cuobjdump = tool_path("cuobjdump")
    if cuobjdump is None:
        return ""
    with tempfile.TemporaryDirectory(prefix="evoagent-inspect-") as tmp:
        path = Path(tmp) / "k.cubin"
        path.write_bytes(cubin)
        return subprocess.run([str(cuobjdump), "--dump-sass", str(path)], capture_output=True, text=True,
                              timeout=timeout_s).stdout


def inspect_text(value: Mapping[str, Any], *, what: str, arch: str, grep: str = "", kernel: str = "",
                 max_lines: int = 60) -> str:
    """The agent's answer: one block per distinct kernel with its counts, then the lines matching `grep`."""
    pattern = _pattern(grep)
    launches = [r for r in value.get("launches", []) if r.get("ok") and (not kernel or r.get("kernel") == kernel)]
    problems = [f"{r.get('kernel')} [{r.get('config')}]: {r.get('error')}" for r in value.get("launches", [])
                if not r.get("ok")] + [str(e.get("error")) for e in value.get("wrapper_errors", [])]
    head = [f"inspect {what} ({arch}) of the workspace version" + (f", lines matching {grep!r}" if grep else "")]
    head += [f"compile problem: {p}" for p in problems[:5]]
    if what == "ttgir":
        blocks = [_listing(name, text, pattern, max_lines, counts="") for name, text in value.get("ttgir", {}).items()
                  if not kernel or name.startswith(f"{kernel}.")]
        return "\n\n".join(head + (blocks or ["no TTGIR in this version's compile cache"]))
    blocks, seen = [], set()
    for record in launches:
        digest = cubin_digest(record["cubin"])
        if digest in seen:
            continue
        seen.add(digest)
        tune = f" {record['autotune']['config']}" if record.get("autotune") else ""
        name = f"{record['kernel']} [{record['config']}]{tune} (warps {record['num_warps']}, stages " \
               f"{record['num_stages']}, cubin {digest})"
        sass = disassemble(record["cubin"])
        counts = _counts(sass_mix(sass)) if sass else "counts: (cuobjdump not available)"
        text = sass if what == "sass" else str(record.get("ptx") or "")
        blocks.append(_listing(name, text, pattern, max_lines, counts=counts))
    return "\n\n".join(head + (blocks or ["no kernel compiled" + (f" named {kernel!r}" if kernel else "")]))


def _pattern(grep: str) -> re.Pattern[str] | None:
    if not grep:
        return None
    try:
        return re.compile(grep, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(grep), re.IGNORECASE)


def _counts(mix: Mapping[str, Any]) -> str:
    parts = [f"{op} {n}" for op, n in {**mix.get("tensor_core", {}), **mix.get("mix", {}),
                                         **{k: v for k, v in mix.get("memory", {}).items()
                                            if k.startswith("UTMA") or k in ("LDG", "STG", "LDL", "STL")}}.items()]
    return f"counts: {', '.join(parts) or 'none of note'}; {mix.get('total', 0)} instructions"


def _listing(name: str, text: str, pattern: re.Pattern[str] | None, max_lines: int, *, counts: str) -> str:
    lines = text.splitlines()
    numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()]
    chosen = [(i, line) for i, line in numbered if pattern is None or pattern.search(line)]
    shown = chosen[:max_lines]
    what = (f"{len(chosen)} matching lines of {len(lines)}" if pattern is not None else f"{len(lines)} lines")
    more = f"; the first {len(shown)} shown" if len(chosen) > len(shown) else ""
    body = "\n".join(f"{i:6d}  {line.rstrip()[:200]}" for i, line in shown)
    return "\n".join(part for part in (f"== {name} ==", counts, f"{what}{more}:", body) if part)
