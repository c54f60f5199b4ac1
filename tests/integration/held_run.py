"""Start a CLI run, wait until it has reported some trials, then hold it still (for kill and resume tests)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def _query(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def done_trials(db: Path) -> list[tuple]:
    """(id, candidate, status, score) of the finished variation trials, read without disturbing the writer."""
    return _query(db, "SELECT id, candidate_id, status, score FROM trials WHERE state='done' "
                      "AND operator != 'seed' ORDER BY id")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell's `cmd &` / nohup does to a background job


def start_and_hold(config: Path, run_dir: Path, hold: Path, *, reported: int, stdout: int,
                   background: bool = False) -> subprocess.Popen:
    """Runs `evoagent run config`, reads its progress until `reported` trials are finished, then creates `hold`.

    The config's evaluator must wait while `hold` exists, so the run cannot finish. Returns once the
    run's store shows the next trial started, so a signal sent next finds it mid-run, with a trial
    in flight, however busy the machine is. `background` starts it with SIGINT ignored, as a shell's `&` does.
    """
    proc = subprocess.Popen([sys.executable, "-m", "evoagent.cli", "run", str(config), "--run-dir", str(run_dir)],
                            stdout=stdout, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_ignore_sigint if background else None)
    assert proc.stderr is not None
    seen = 0
    for line in proc.stderr:  # the run's own progress report, one line per finished trial
        seen += line.lstrip().startswith("trial ")
        if seen == reported:
            break
    assert seen == reported, f"the run ended after reporting {seen} trials (exit {proc.wait()})"
    hold.touch()
    db = run_dir / "run.db"
    while not _query(db, "SELECT 1 FROM trials WHERE state = 'running' AND operator != 'seed'"):
        assert proc.poll() is None, f"the run ended before its next trial started (exit {proc.returncode})"
        time.sleep(0.01)  # polls the store for the event "a trial is in flight"
    return proc
