"""The run report: Plotly charts of a run and one self-contained HTML file (needs `pip install evoagent[report]`).

`import evoagent` never imports this package; `evoagent report RUN` and `Run.report()` do.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["build_report", "figures", "require_plotly", "write_report"]


def require_plotly() -> None:
    """Raises a one-line ConfigError saying how to install Plotly when it is missing."""
    if importlib.util.find_spec("plotly") is None:
        raise ConfigError("the report needs Plotly, which is not installed: pip install 'evoagent[report]'")


def build_report(run_dir: str | os.PathLike[str]) -> str:
    """The HTML text of a run's report (the run's store is opened read-only)."""
    require_plotly()
    from .page import build_report as build

    return build(run_dir)


def write_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Writes the report (default: report.html in the run directory) and returns its path."""
    require_plotly()
    from .page import write_report as write

    return write(run_dir, out)


def figures(run: Any) -> dict[str, Any]:
    """The report's Plotly figures by title ("Score over trials", "Lineage", ...) of a Run or a run directory."""
    require_plotly()
    from .page import figures as all_figures
    from .page import open_store, read

    if hasattr(run, "store"):
        return {title: fig for title, fig, _ in all_figures(read(run.store))}
    store = open_store(run)
    try:
        return {title: fig for title, fig, _ in all_figures(read(store))}
    finally:
        store.close()
