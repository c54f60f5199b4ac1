"""Hostile candidates run by a real engine with the static scan off: the confinement makes each attempt fail.

Each file under hostile/ computes attention honestly (the kernel and wrapper of cheats/_honest_kernel.py) and, at call
time, tries one thing the sandbox must stop: write outside its directories, read a secret file and
leak it through its error text, read the engine's environment, signal the engine, connect to a
listener on 127.0.0.1. The static scan names every attempt (the first test); the engine, a
subprocess (`hostile_engine.py`) with an API key in its environment, switches the scan off so that
the operating system's layer is what is tested. Confined, every hostile trial gets a failure label, the run goes on, and no secret
appears in the store, the transcript, the caches or the output. The unconfined control run shows
that every attempt works without confinement (so these tests can fail).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hostile_engine import HOSTILE, MARK, honest_block, hostile_sources

from evoagent import Run, confinement
from evoagent.targets.attention import legality

API_KEY = "sk-ant-hostile-test-0f3c9a"
FILE_SECRET = "file-secret-7d41be"
ATTEMPTS = {"write_outside", "read_secret_file", "read_engine_environ", "signal_engine", "connect_listener"}

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(confinement.landlock_abi() < 1, reason="the kernel has no Landlock")]


def test_the_static_scan_names_every_hostile_attempt() -> None:
    assert {p.stem for p in HOSTILE.glob("*.py")} == ATTEMPTS
    for source in hostile_sources({"__ENGINE_PID__": "1", "__PORT__": "9"}):
        assert MARK not in source and honest_block() in source and legality.check_contract(source) is None
        findings = legality.scan(source)
        assert findings and {f.rule for f in findings} <= {"module-reach", "file-access"}, findings


def _engine_run(tmp_path: Path, *, confine: bool) -> dict[str, Any]:
    (tmp_path / "outside").mkdir()
    secret = tmp_path / "outside" / "secret.txt"
    secret.write_text(FILE_SECRET)
    marker = tmp_path / "signalled"
    env = {**os.environ, "ANTHROPIC_API_KEY": API_KEY}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        done = subprocess.run(
            [sys.executable, str(HOSTILE.parent / "hostile_engine.py"), str(tmp_path / "run"), str(tmp_path / "cache"),
             "1" if confine else "0", str(secret), str(tmp_path / "outside"), str(listener.getsockname()[1]),
             str(marker)],
            capture_output=True, text=True, env=env, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        listener.setblocking(False)
        try:
            listener.accept()[0].close()  # the run has ended: a connection it made waits in the backlog
            connected = True
        except BlockingIOError:
            connected = False
    trials = json.loads(done.stdout.strip().splitlines()[-1])
    files = [p for root in ("run", "cache") for p in (tmp_path / root).rglob("*") if p.is_file() and p.name != "run.db"]
    with sqlite3.connect(tmp_path / "run" / "run.db") as db:  # every row as SQL text (long rows span pages)
        stored = "\n".join(db.iterdump()).encode() + b"".join(p.read_bytes() for p in files)
    with Run.open(tmp_path / "run", readonly=True) as run:
        transcript = json.dumps(run.store.transcript())
        confinement_level = run.status()["confinement"]
    return {"trials": trials, "output": done.stdout + done.stderr, "stored": stored, "transcript": transcript,
            "connected": connected, "signalled": marker.exists(), "planted": (tmp_path / "outside" / "planted.bin").exists(),
            "confinement": confinement_level}


def test_confined_hostile_candidates_fail_and_leak_nothing(tmp_path: Path) -> None:
    run = _engine_run(tmp_path, confine=True)
    seed, *hostile = run["trials"]
    assert seed["operator"] == "seed" and seed["status"] == "ok", seed["reason"]
    assert len(hostile) == len(ATTEMPTS)  # the run went on after every hostile trial
    for trial in hostile:
        assert trial["status"] != "ok" and trial["status"] != "harness_error", trial
        # refused, or (the engine's pid, from the call's own PID namespace) not even visible
        assert any(word in trial["reason"] for word in ("Permission denied", "Operation not permitted",
                                                         "No such process")), trial
    for secret in (API_KEY, FILE_SECRET):
        assert secret not in run["output"] and secret not in run["transcript"]
        assert secret.encode() not in run["stored"]
    assert not run["connected"] and not run["signalled"] and not run["planted"]
    assert run["confinement"]["level"] in ("full", "partial")


def test_without_confinement_every_attempt_works(tmp_path: Path) -> None:
    run = _engine_run(tmp_path, confine=False)
    assert FILE_SECRET.encode() in run["stored"] and API_KEY.encode() in run["stored"]
    assert run["connected"] and run["signalled"] and run["planted"]
    assert run["confinement"]["level"] == "off"
