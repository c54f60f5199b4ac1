"""Run: a run directory (its store, evaluator and population policy), created once and reopened to resume."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .candidate import Candidate
from .config import construct
from .errors import ConfigError, RunStoreError
from .evaluator import Evaluator
from .lineage import Lineage
from .niches import population_from_spec
from .population import Chain, Population
from .records import Trial
from .references import load_object
from .result import EvalResult
from .store import SCHEMA_VERSION, RunStore

DB_NAME = "run.db"
LOCK_NAME = "run.lock"

def evaluator_from_spec(spec: dict[str, Any], base_dir: str | os.PathLike[str] | None = None) -> Evaluator:
    """Builds the evaluator a stored or configured spec names: {"class": reference, "params": {...}}."""
    cls = load_object(spec["class"], base_dir)
    if not (isinstance(cls, type) and issubclass(cls, Evaluator)):
        raise ConfigError(f"{spec['class']!r} is not an Evaluator subclass")
    return construct(cls, spec.get("params", {}), f"evaluator {spec['class']!r} params")  # type: ignore[no-any-return]


class Run:
    """A run directory: `Run.create(...)` once, then `Run.open(dir)` to resume or inspect."""

    def __init__(self, directory: Path, store: RunStore, evaluator: Evaluator | None,
                 population: Population, lock_fd: int | None) -> None:
        self.dir = directory
        self.store = store
        self._evaluator = evaluator
        self.population = population
        self._lock_fd = lock_fd

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def create(cls, directory: str | os.PathLike[str], *, evaluator: Evaluator,
               seeds: Sequence[str | os.PathLike[str] | Candidate], population: Population | None = None,
               config: dict[str, Any] | None = None) -> Run:
        """Creates a new run directory; refuses one that already holds a run or other files."""
        directory = Path(directory)
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            what = "a run" if (directory / DB_NAME).exists() else "files"
            raise RunStoreError(f"run directory {str(directory)!r} already holds {what}; "
                                "resume it with `evoagent resume` / Run.open, or choose a new directory")
        if not isinstance(evaluator, Evaluator):
            raise ConfigError(f"'evaluator' must be an Evaluator instance (got {evaluator!r})")
        if not seeds:
            raise ConfigError("a run needs at least one seed (a file, a directory or a Candidate)")
        candidates = [_seed(s, evaluator.entry) for s in seeds]
        population = population or Chain()
        directory.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock(directory)
        store = RunStore(directory / DB_NAME, create=True)
        for c in candidates:
            store.add_candidate(c)
        store.set_meta("evoagent", {"version": _version(), "schema": str(SCHEMA_VERSION)})
        store.set_meta("evaluator", evaluator.spec())
        device = evaluator.device_label()  # what `evoagent status` shows without importing the target
        store.set_meta("target", {"name": evaluator.name, "device": device, "caption": evaluator.score_caption(device)})
        store.set_meta("population", population.spec())
        store.set_meta("seeds", [c.id for c in candidates])
        store.set_meta("config", config or {})
        return cls(directory, store, evaluator, population, lock_fd)

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, evaluator: Evaluator | None = None,
             population: Population | None = None, readonly: bool = False) -> Run:
        """Opens an existing run: writable to resume (one writer at a time), or read-only while it runs."""
        directory = Path(directory)
        if not (directory / DB_NAME).is_file():
            raise RunStoreError(f"{str(directory)!r} is not a run directory (no {DB_NAME} in it)")
        lock_fd = None if readonly else _lock(directory)
        store = RunStore(directory / DB_NAME, readonly=readonly)
        if population is None:
            population = population_from_spec(store.meta("population", {"kind": "chain"}))
        return cls(directory, store, evaluator, population, lock_fd)

    def close(self) -> None:
        self.store.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- views ----------------------------------------------------------------------------

    @property
    def evaluator(self) -> Evaluator:
        """The run's evaluator (rebuilt from its stored spec when the run was opened without one)."""
        if self._evaluator is None:
            self._evaluator = evaluator_from_spec(self.store.meta("evaluator"))
        return self._evaluator

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.store.meta("config", {}) or {})

    @property
    def seeds(self) -> list[Candidate]:
        return [c for c in (self.store.candidate(i) for i in self.store.meta("seeds", [])) if c is not None]

    @property
    def lineage(self) -> Lineage:
        return Lineage(self.store)

    @property
    def best(self) -> Candidate | None:
        best = self.lineage.best()
        return self.store.candidate(best[0]) if best else None

    @property
    def best_result(self) -> EvalResult | None:
        best = self.lineage.best()
        return self.store.result(best[0]) if best else None

    def trials(self, *, include_seeds: bool = False) -> list[Trial]:
        return self.store.trials(state="done", include_seeds=include_seeds)

    def trials_frame(self) -> Any:
        """Every trial as a pandas DataFrame indexed by trial id (needs pandas: `pip install evoagent[notebook]`)."""
        try:
            import pandas
        except ImportError:
            raise ConfigError("trials_frame() needs pandas, which is not installed: "
                              "pip install 'evoagent[notebook]'") from None
        from dataclasses import asdict, fields

        from .views import TrialRow, trial_rows

        rows = []
        for row in trial_rows(self.store):  # the improvement figure's range as two plain columns
            data = asdict(row)
            figure = data.pop("parent_figure") or {}
            rows.append({**data, "ratio_low": figure.get("low"), "ratio_high": figure.get("high")})
        columns = [f.name for f in fields(TrialRow) if f.name != "parent_figure"] + ["ratio_low", "ratio_high"]
        return pandas.DataFrame(rows, columns=columns).set_index("id")

    def report(self, out: str | os.PathLike[str] | None = None) -> Path:
        """Writes the HTML report (default: report.html in the run directory); needs `evoagent[report]`."""
        from .report import write_report

        return write_report(self.dir, out)

    def _repr_html_(self) -> str:
        from .views import summarize, summary_html

        return summary_html(summarize(self.store, now=time.time()))

    def status(self) -> dict[str, Any]:
        """The summary `evoagent status --json` prints."""
        totals = self.store.totals()
        best = self.lineage.best()
        result = self.store.result(best[0]) if best else None
        return {
            "run_dir": str(self.dir),
            "trials": totals["trials"],
            "by_status": totals["by_status"],
            "committed": totals["committed"],
            "interrupted": totals["interrupted"],
            "best_score": best[1] if best else None,
            "best_id": best[0] if best else None,
            "device": result.device if result else None,
            "tokens": totals["tokens"],
            "tokens_by_kind": totals["tokens_by_kind"],
            "cost_usd": round(totals["cost_usd"], 6),
            "confinement": self.store.meta("confinement"),
            "executor": self.store.meta("executor"),
            "executor_nodes": self.store.meta("executor_nodes") or [],
            "retries": len(self.store.evaluations(kind="lost")),
            "gpu_usage": [{**dataclasses.asdict(u), "busy_fraction": u.busy_fraction}
                          for u in self.store.device_usage()],
            **_per_trial(totals),
            "unpriced_calls": totals["unpriced_calls"],
            "population": self.population.name,
            "niches": self.lineage.niches(),
            "migrations": self.store.last_migration_epoch(),
            "models": [dataclasses.asdict(m) for m in self.store.model_stats().values()],
        }


def _per_trial(totals: dict[str, Any]) -> dict[str, Any]:
    """Tokens by kind and USD per finished trial (seeds not counted; None before the first trial)."""
    n = totals["trials"]
    if not n:
        return {"tokens_per_trial": None, "usd_per_trial": None}
    return {"tokens_per_trial": {kind: round(value / n, 1) for kind, value in totals["tokens_by_kind"].items()},
            "usd_per_trial": round(totals["cost_usd"] / n, 6)}


def _seed(seed: str | os.PathLike[str] | Candidate, entry: str) -> Candidate:
    if isinstance(seed, Candidate):
        return seed
    path = Path(seed)
    if not path.exists():
        raise ConfigError(f"seed {str(path)!r} does not exist; expected a file or directory with the seed program")
    return Candidate.from_path(path, entry=entry, hypothesis="seed")


def _lock(directory: Path) -> int:
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunStoreError(f"run {str(directory)!r} is being written by {holder}; "
                            "wait for it or open it read-only (evoagent status)") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
    return fd


def gone_writer(directory: str | os.PathLike[str]) -> int | None:
    """The pid of the run's last writer when it ran on this host and that process no longer exists, else None.

    The lock file keeps "pid N on HOST" after its writer dies (a SIGKILL leaves no stop event), so a watcher
    can tell a dead run from a quiet one. None also when no writer is recorded or it ran on another host.
    """
    try:
        text = (Path(directory) / LOCK_NAME).read_text(errors="replace")
    except FileNotFoundError:
        return None
    match = re.fullmatch(r"pid (\d+)(?: on (\S+))?", text.strip())
    if match is None or (match[2] is not None and match[2] != socket.gethostname()):
        return None
    pid = int(match[1])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid
    except PermissionError:  # alive, owned by another user
        return None
    return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evoagent")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"



