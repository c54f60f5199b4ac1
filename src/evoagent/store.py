"""RunStore: the run's SQLite database (WAL) — candidates, evaluations, trials, messages, events, lessons.

Only this module speaks SQL. Writes go through one connection guarded by a lock (the engine's
slots are threads); other processes read concurrently thanks to WAL. Each finished trial is
committed in one transaction before the engine starts on the next one.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .candidate import Candidate, fingerprint
from .errors import IncompatibleRunError, RunStoreError
from .records import Member, ModelStats, Trial, Usage
from .result import EvalResult, Status
from .scheduling import DeviceUsage

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Member", "RunStore", "Trial"]  # Member, Trial: from records

SCHEMA_VERSION = 7  # len(MIGRATIONS)


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Runs `;`-separated DDL inside the caller's transaction (executescript would commit it)."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def _m001_initial(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE candidates (
            id TEXT PRIMARY KEY, entry TEXT NOT NULL, files TEXT NOT NULL, parents TEXT NOT NULL,
            hypothesis TEXT NOT NULL, metadata TEXT NOT NULL, created_at REAL NOT NULL);
        CREATE TABLE trials (
            id INTEGER PRIMARY KEY, state TEXT NOT NULL, operator TEXT NOT NULL,
            parent_id TEXT, candidate_id TEXT, hypothesis TEXT NOT NULL DEFAULT '',
            diff TEXT NOT NULL DEFAULT '', status TEXT, reason TEXT NOT NULL DEFAULT '',
            score REAL, metrics TEXT NOT NULL DEFAULT '{}', committed INTEGER NOT NULL DEFAULT 0,
            input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0, cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd REAL NOT NULL DEFAULT 0, started_at REAL NOT NULL, finished_at REAL,
            wall_s REAL, eval_s REAL);
        CREATE INDEX trials_state ON trials(state);
        CREATE TABLE evaluations (
            id INTEGER PRIMARY KEY, candidate_id TEXT NOT NULL, trial_id INTEGER, kind TEXT NOT NULL,
            status TEXT NOT NULL, score REAL, result TEXT NOT NULL, created_at REAL NOT NULL);
        CREATE INDEX evaluations_candidate ON evaluations(candidate_id, kind);
        CREATE TABLE population (
            seq INTEGER PRIMARY KEY, candidate_id TEXT NOT NULL UNIQUE, trial_id INTEGER NOT NULL,
            score REAL NOT NULL);
        CREATE INDEX population_score ON population(score, seq);
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY, trial_id INTEGER NOT NULL, role TEXT NOT NULL,
            content TEXT NOT NULL, created_at REAL NOT NULL);
        CREATE INDEX messages_trial ON messages(trial_id);
        CREATE TABLE events (
            id INTEGER PRIMARY KEY, ts REAL NOT NULL, trial_id INTEGER, kind TEXT NOT NULL,
            payload TEXT NOT NULL);
        CREATE TABLE lessons (id INTEGER PRIMARY KEY, trial_id INTEGER NOT NULL, text TEXT NOT NULL);
        """
    )


def _m002_unpriced_calls(db: sqlite3.Connection) -> None:
    """Model calls whose price is unknown (their tokens count, their cost does not)."""
    db.execute("ALTER TABLE trials ADD COLUMN unpriced_calls INTEGER NOT NULL DEFAULT 0")


def _m003_trial_lookups(db: sqlite3.Connection) -> None:
    """Indexes for per-trial queries that stay flat as a run grows: trials by parent and by candidate."""
    _script(db, """
        CREATE INDEX trials_parent ON trials(parent_id, id);
        CREATE INDEX trials_candidate ON trials(candidate_id);
        """)


def _m004_niches_and_fingerprints(db: sqlite3.Connection) -> None:
    """Islands and MAP-Elites cells (placements, island migrations), trial descriptors, AST fingerprints."""
    _script(
        db,
        """
        ALTER TABLE candidates ADD COLUMN fingerprint TEXT;
        CREATE INDEX candidates_fingerprint ON candidates(fingerprint);
        ALTER TABLE trials ADD COLUMN niche TEXT;
        ALTER TABLE trials ADD COLUMN descriptors TEXT NOT NULL DEFAULT '{}';
        CREATE TABLE placements (
            seq INTEGER PRIMARY KEY, niche TEXT NOT NULL, candidate_id TEXT NOT NULL,
            trial_id INTEGER NOT NULL, score REAL NOT NULL, via TEXT NOT NULL);
        CREATE INDEX placements_niche_score ON placements(niche, score, seq);
        CREATE INDEX placements_niche_candidate ON placements(niche, candidate_id);
        CREATE TABLE elites (
            niche TEXT PRIMARY KEY, seq INTEGER NOT NULL, candidate_id TEXT NOT NULL, trial_id INTEGER NOT NULL,
            score REAL NOT NULL, first_seq INTEGER NOT NULL);
        CREATE INDEX elites_first ON elites(first_seq);
        CREATE TABLE island_migrations (epoch INTEGER PRIMARY KEY, moves TEXT NOT NULL, created_at REAL NOT NULL);
        """
    )
    for row in list(db.execute("SELECT id, files FROM candidates")):
        db.execute("UPDATE candidates SET fingerprint = ? WHERE id = ?", (fingerprint(json.loads(row[1])), row[0]))


def _m005_models(db: sqlite3.Connection) -> None:
    """The model each trial asked, and per-model totals (the ensemble's bandit state)."""
    _script(db, """
        ALTER TABLE trials ADD COLUMN model TEXT;
        CREATE TABLE models (
            model TEXT PRIMARY KEY, trials INTEGER NOT NULL DEFAULT 0, commits INTEGER NOT NULL DEFAULT 0,
            tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0,
            unpriced_calls INTEGER NOT NULL DEFAULT 0)
        """)


def _m006_device_usage(db: sqlite3.Connection) -> None:
    """GPU busy and wall seconds per device, one row per engine session (an evolve() or resume call)."""
    _script(db, """
        CREATE TABLE device_usage (
            session INTEGER NOT NULL, device TEXT NOT NULL, busy_s REAL NOT NULL, wall_s REAL NOT NULL,
            calls INTEGER NOT NULL, PRIMARY KEY (session, device))
        """)


def _m007_compiled_keys(db: sqlite3.Connection) -> None:
    """What a version compiles to (the target's `equivalence_key`), so an equivalent one is a duplicate."""
    _script(db, """
        CREATE TABLE compiled_keys (key TEXT NOT NULL, candidate_id TEXT NOT NULL, PRIMARY KEY (key, candidate_id));
        """)


# Numbered schema migrations; applied in order and recorded in the `migrations` table.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_m001_initial, _m002_unpriced_calls,
                                                                _m003_trial_lookups, _m004_niches_and_fingerprints,
                                                                _m005_models, _m006_device_usage,
                                                                _m007_compiled_keys)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _finite(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


class RunStore:
    """The SQLite store of one run directory."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False, create: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if not create and not self.path.is_file():
            raise RunStoreError(f"no run database at {str(self.path)!r}: is this a run directory?")
        self._lock = threading.RLock()
        try:
            if readonly:
                uri = f"file:{self.path.resolve()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10)
            else:
                self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.row_factory = sqlite3.Row
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise RunStoreError(f"{str(self.path)!r} is not a usable evoagent run database ({exc})") from None

    # -- schema ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "migrations" not in tables:
            if tables:
                raise RunStoreError(f"{str(self.path)!r} is an SQLite file but not an evoagent run database")
            if self.readonly:
                raise RunStoreError(f"{str(self.path)!r} is empty: not an evoagent run database")
            self._db.execute("CREATE TABLE migrations (id INTEGER PRIMARY KEY, name TEXT, applied_at REAL)")
        applied = {r[0] for r in self._db.execute("SELECT id FROM migrations")}
        if applied and max(applied) > len(MIGRATIONS):
            raise IncompatibleRunError(
                f"run database {str(self.path)!r} has schema version {max(applied)}, newer than this "
                f"evoagent's {len(MIGRATIONS)}: upgrade evoagent to open it"
            )
        for number, migration in enumerate(MIGRATIONS, start=1):
            if number in applied:
                continue
            if self.readonly:
                raise IncompatibleRunError(
                    f"run database {str(self.path)!r} needs migration {number}; open it writable once")
            with self._tx() as db:
                migration(db)
                db.execute("INSERT INTO migrations VALUES (?, ?, ?)", (number, migration.__name__, time.time()))

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- meta -----------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, _json(value)))

    def meta(self, key: str, default: Any = None) -> Any:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    # -- candidates and evaluations -------------------------------------------------------

    def add_candidate(self, candidate: Candidate) -> None:
        with self._tx() as db:
            self._insert_candidate(db, candidate)

    @staticmethod
    def _insert_candidate(db: sqlite3.Connection, c: Candidate) -> None:
        db.execute(
            "INSERT OR IGNORE INTO candidates (id, entry, files, parents, hypothesis, metadata, created_at,"
            " fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (c.id, c.entry, _json(dict(c.files)), _json(list(c.parents)), c.hypothesis,
             _json(dict(c.metadata)), time.time(), c.fingerprint),
        )

    def candidate(self, candidate_id: str) -> Candidate | None:
        """A candidate by id or by a unique id prefix (at least 4 characters)."""
        rows = self._rows("SELECT * FROM candidates WHERE id = ?", (candidate_id,))
        if not rows and len(candidate_id) >= 4:
            rows = self._rows("SELECT * FROM candidates WHERE id LIKE ? LIMIT 2", (candidate_id + "%",))
            if len(rows) != 1:
                return None
        if not rows:
            return None
        r = rows[0]
        return Candidate(files=json.loads(r["files"]), entry=r["entry"], parents=tuple(json.loads(r["parents"])),
                         hypothesis=r["hypothesis"], metadata=json.loads(r["metadata"]))

    def add_evaluation(self, candidate: Candidate, result: EvalResult, *, kind: str, trial_id: int | None) -> None:
        with self._tx() as db:
            self._insert_candidate(db, candidate)
            self._insert_evaluation(db, candidate.id, result, kind, trial_id)

    @staticmethod
    def _insert_evaluation(db: sqlite3.Connection, candidate_id: str, result: EvalResult, kind: str,
                           trial_id: int | None) -> None:
        db.execute(
            "INSERT INTO evaluations (candidate_id, trial_id, kind, status, score, result, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (candidate_id, trial_id, kind, result.status.value, _finite(result.score), _json(result.to_dict()),
             time.time()),
        )

    def result(self, candidate_id: str) -> EvalResult | None:
        """The latest authoritative evaluation of a candidate."""
        rows = self._rows(
            "SELECT result FROM evaluations WHERE candidate_id = ? AND kind = 'authoritative' ORDER BY id DESC LIMIT 1",
            (candidate_id,),
        )
        return EvalResult.from_dict(json.loads(rows[0][0])) if rows else None

    def equivalent_evaluated(self, fingerprint: str) -> str | None:
        """The id of an authoritatively evaluated version with this AST fingerprint, if any."""
        rows = self._rows(
            "SELECT c.id FROM candidates c JOIN evaluations e ON e.candidate_id = c.id "
            "WHERE c.fingerprint = ? AND e.kind = 'authoritative' LIMIT 1", (fingerprint,))
        return str(rows[0][0]) if rows else None

    def add_compiled_key(self, key: str, candidate_id: str) -> None:
        """Records what a version compiles to (see `compiled_equivalent`)."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO compiled_keys (key, candidate_id) VALUES (?, ?)", (key, candidate_id))

    def compiled_equivalent(self, key: str, candidate_id: str) -> str | None:
        """Another authoritatively evaluated version that compiles to `key`, if any."""
        rows = self._rows(
            "SELECT k.candidate_id FROM compiled_keys k JOIN evaluations e ON e.candidate_id = k.candidate_id "
            "WHERE k.key = ? AND k.candidate_id != ? AND e.kind = 'authoritative' LIMIT 1", (key, candidate_id))
        return str(rows[0][0]) if rows else None

    def count_evaluations(self, kind: str) -> int:
        return int(self._rows("SELECT COUNT(*) FROM evaluations WHERE kind = ?", (kind,))[0][0])

    def evaluations(self, *, kind: str) -> list[dict[str, Any]]:
        """The evaluations of one kind (e.g. `lost`: ended by a lost worker, then retried), oldest first."""
        rows = self._rows("SELECT candidate_id, trial_id, status, score FROM evaluations WHERE kind = ? ORDER BY id",
                          (kind,))
        return [{"candidate_id": r["candidate_id"], "trial_id": r["trial_id"], "status": r["status"],
                 "score": r["score"]} for r in rows]

    # -- trials ---------------------------------------------------------------------------

    def begin_trial(self, *, operator: str, parent_id: str | None, niche: str | None = None) -> int:
        with self._tx() as db:
            cur = db.execute("INSERT INTO trials (state, operator, parent_id, niche, started_at)"
                             " VALUES ('running', ?, ?, ?, ?)", (operator, parent_id, niche, time.time()))
            assert cur.lastrowid is not None
            return cur.lastrowid

    def finish_trial(
        self, trial_id: int, *, candidate: Candidate | None, result: EvalResult, hypothesis: str, diff: str,
        committed: bool, eval_s: float, lesson: str, niche: str | None = None, placed_in: Sequence[str] = (),
        descriptors: Mapping[str, float | None] | None = None,
    ) -> Trial | None:
        """Records the outcome in one transaction; returns None if the trial was already interrupted.

        `niche` is where the result was judged (an island or cell); a committed version is placed
        in each niche of `placed_in`; `descriptors` are its behaviour descriptors (MAP-Elites).
        """
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT state, started_at FROM trials WHERE id = ?", (trial_id,)).fetchone()
            if row is None or row["state"] != "running":
                return None
            if candidate is not None:
                self._insert_candidate(db, candidate)
                if result.status is not Status.DUPLICATE:
                    self._insert_evaluation(db, candidate.id, result, "authoritative", trial_id)
            db.execute(
                "UPDATE trials SET state='done', candidate_id=?, hypothesis=?, diff=?, status=?, reason=?, score=?,"
                " metrics=?, committed=?, finished_at=?, wall_s=?, eval_s=?, niche=COALESCE(?, niche),"
                " descriptors=? WHERE id=?",
                (candidate.id if candidate else None, hypothesis, diff, result.status.value, result.reason,
                 _finite(result.score), _json(dict(result.metrics)), int(committed), now,
                 now - row["started_at"], eval_s, niche, _json(dict(descriptors or {})), trial_id),
            )
            if committed:
                assert candidate is not None and result.score is not None  # Check internal correctness.
                db.execute("INSERT OR IGNORE INTO population (candidate_id, trial_id, score) VALUES (?, ?, ?)",
                           (candidate.id, trial_id, result.score))
                for name in placed_in:
                    _place(db, name, candidate.id, trial_id, result.score, "commit")
            if lesson:
                db.execute("INSERT INTO lessons (trial_id, text) VALUES (?, ?)", (trial_id, lesson))
            db.execute("UPDATE models SET trials=trials+1, commits=commits+? "
                       "WHERE model=(SELECT model FROM trials WHERE id=?)", (int(committed), trial_id))
        return self.trial(trial_id)

    def add_usage(self, trial_id: int, usage: Usage) -> None:
        """Adds model usage to a trial as it happens (so an interrupted trial still counts its cost)."""
        with self._tx() as db:
            db.execute(
                "UPDATE trials SET input_tokens=input_tokens+?, output_tokens=output_tokens+?,"
                " cache_read_tokens=cache_read_tokens+?, cache_write_tokens=cache_write_tokens+?,"
                " cost_usd=cost_usd+?, unpriced_calls=unpriced_calls+? WHERE id=?",
                (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
                 usage.cost_usd, usage.unpriced_calls, trial_id),
            )
            db.execute("UPDATE models SET tokens=tokens+?, cost_usd=cost_usd+?, unpriced_calls=unpriced_calls+? "
                       "WHERE model=(SELECT model FROM trials WHERE id=?)",
                       (usage.tokens, usage.cost_usd, usage.unpriced_calls, trial_id))

    def label_model(self, trial_id: int, model: str) -> None:
        """Records the model a trial asks (before its first call, so that its usage counts for that model)."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO models (model) VALUES (?)", (model,))
            db.execute("UPDATE trials SET model=? WHERE id=?", (model, trial_id))

    def model_stats(self) -> dict[str, ModelStats]:
        """Per-model totals of the run (finished trials, commits, tokens, USD), by model name."""
        return {r["model"]: ModelStats(model=r["model"], trials=r["trials"], commits=r["commits"],
                                       tokens=r["tokens"], cost_usd=r["cost_usd"], unpriced_calls=r["unpriced_calls"])
                for r in self._rows("SELECT * FROM models ORDER BY model")}

    def mark_interrupted(self, trial_ids: Sequence[int] | None = None) -> int:
        """Marks running trials (all, or the given ones) as interrupted; returns how many."""
        with self._tx() as db:
            if trial_ids is None:
                cur = db.execute("UPDATE trials SET state='interrupted', finished_at=? WHERE state='running'",
                                 (time.time(),))
            else:
                cur = db.executemany(
                    "UPDATE trials SET state='interrupted', finished_at=? WHERE state='running' AND id=?",
                    [(time.time(), t) for t in trial_ids])
            return cur.rowcount

    def last_trial_id(self) -> int:
        return int(self._rows("SELECT COALESCE(MAX(id), 0) FROM trials")[0][0])

    def trial(self, trial_id: int) -> Trial | None:
        rows = self._rows("SELECT * FROM trials WHERE id = ?", (trial_id,))
        return _trial(rows[0]) if rows else None

    def trials(self, *, state: str | None = None, last: int | None = None, include_seeds: bool = True,
               parent_id: str | None = None, candidate_ids: Sequence[str] | None = None) -> list[Trial]:
        """Trials in id order, filtered; `last` keeps the newest ones (indexed: cheap in a long run)."""
        where: list[str] = []
        args: list[Any] = []
        if state is not None:
            # With a selective filter (parent, candidates) the unary + keeps SQLite off the state index,
            # which would read every trial in that state (nearly all of them in a long run).
            selective = parent_id is not None or candidate_ids is not None
            where.append("+state = ?" if selective else "state = ?")
            args.append(state)
        if not include_seeds:
            where.append("operator != 'seed'")
        if parent_id is not None:
            where.append("parent_id = ?")
            args.append(parent_id)
        if candidate_ids is not None:
            where.append(f"candidate_id IN ({', '.join('?' * len(candidate_ids))})")
            args += list(candidate_ids)
        sql = "SELECT * FROM trials" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        if last is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(last)}) ORDER BY id"
        return [_trial(r) for r in self._rows(sql, args)]

    def totals(self) -> dict[str, Any]:
        """Counts for status displays: trials done (seeds excluded), by status, committed, usage."""
        r = self._rows(
            "SELECT COUNT(*) AS n, COALESCE(SUM(committed),0) AS committed,"
            " COALESCE(SUM(input_tokens+output_tokens+cache_read_tokens+cache_write_tokens),0) AS tokens,"
            " COALESCE(SUM(cost_usd),0) AS cost FROM trials WHERE state='done' AND operator != 'seed'")[0]
        by_status = {row[0]: row[1] for row in self._rows(
            "SELECT status, COUNT(*) FROM trials WHERE state='done' AND operator != 'seed' GROUP BY status")}
        usage = self._rows("SELECT COALESCE(SUM(input_tokens),0), COALESCE(SUM(output_tokens),0),"
                           " COALESCE(SUM(cache_read_tokens),0), COALESCE(SUM(cache_write_tokens),0),"
                           " COALESCE(SUM(cost_usd),0), COALESCE(SUM(unpriced_calls),0) FROM trials")[0]
        by_kind = {"input": int(usage[0]), "output": int(usage[1]), "cache_read": int(usage[2]),
                   "cache_write": int(usage[3])}
        interrupted = self._rows("SELECT COUNT(*) FROM trials WHERE state='interrupted'")[0][0]
        return {"trials": r["n"], "committed": r["committed"], "by_status": by_status,
                "tokens": sum(by_kind.values()), "tokens_by_kind": by_kind,
                "new_tokens": by_kind["input"] + by_kind["output"] + by_kind["cache_write"],
                "cost_usd": float(usage[4]), "unpriced_calls": int(usage[5]), "interrupted": interrupted}

    # -- device usage ---------------------------------------------------------------------

    def next_usage_session(self) -> int:
        """A number for this engine session's device-usage rows (one more than any stored)."""
        return int(self._rows("SELECT COALESCE(MAX(session), 0) + 1 FROM device_usage")[0][0])

    def record_device_usage(self, session: int, usage: Sequence[DeviceUsage]) -> None:
        """Replaces the session's rows with its executor's usage so far (called as the session goes on)."""
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO device_usage VALUES (?, ?, ?, ?, ?)",
                           [(session, u.device, u.busy_s, u.wall_s, u.calls) for u in usage])

    def device_usage(self) -> list[DeviceUsage]:
        """Each device's busy and wall seconds summed over the run's sessions."""
        return [DeviceUsage(device=r[0], busy_s=r[1], wall_s=r[2], calls=r[3]) for r in self._rows(
            "SELECT device, SUM(busy_s), SUM(wall_s), SUM(calls) FROM device_usage GROUP BY device ORDER BY device")]

    # -- population -----------------------------------------------------------------------

    def members(self) -> list[Member]:
        return [_member(r) for r in self._rows("SELECT * FROM population ORDER BY seq")]

    def member_count(self) -> int:
        return int(self._rows("SELECT COUNT(*) FROM population")[0][0])

    def best_member(self) -> Member | None:
        rows = self._rows("SELECT * FROM population ORDER BY score DESC, seq DESC LIMIT 1")
        return _member(rows[0]) if rows else None

    def latest_member(self) -> Member | None:
        rows = self._rows("SELECT * FROM population ORDER BY seq DESC LIMIT 1")
        return _member(rows[0]) if rows else None

    def top_members(self, k: int) -> list[Member]:
        return [_member(r) for r in self._rows("SELECT * FROM population ORDER BY score DESC, seq DESC LIMIT ?", (k,))]

    def is_member(self, candidate_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM population WHERE candidate_id = ?", (candidate_id,)))

    def member_at(self, index: int) -> Member:
        """The index-th member in commit order (0-based)."""
        return _member(self._rows("SELECT * FROM population ORDER BY seq LIMIT 1 OFFSET ?", (index,))[0])

    # -- niches: islands and MAP-Elites cells ---------------------------------------------

    def niche_count(self, niche: str) -> int:
        return int(self._rows("SELECT COUNT(*) FROM placements WHERE niche = ?", (niche,))[0][0])

    def niche_top(self, niche: str, k: int) -> list[Member]:
        """The k best placements of a niche (ties: the newest first)."""
        return [_placed(r) for r in self._rows(
            "SELECT * FROM placements WHERE niche = ? ORDER BY score DESC, seq DESC LIMIT ?", (niche, k))]

    def niche_latest(self, niche: str) -> Member | None:
        rows = self._rows("SELECT * FROM placements WHERE niche = ? ORDER BY seq DESC LIMIT 1", (niche,))
        return _placed(rows[0]) if rows else None

    def niche_at(self, niche: str, index: int) -> Member:
        return _placed(self._rows("SELECT * FROM placements WHERE niche = ? ORDER BY seq LIMIT 1 OFFSET ?",
                                  (niche, index))[0])

    def niche_has(self, niche: str, candidate_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM placements WHERE niche = ? AND candidate_id = ? LIMIT 1",
                               (niche, candidate_id)))

    def elites(self) -> list[Member]:
        """The best placement of every niche (ties: the newest), in order of the niche's first placement."""
        return [Member(seq=r[0], niche=r[1], candidate_id=r[2], trial_id=r[3], score=r[4]) for r in self._rows(
            "SELECT seq, niche, candidate_id, trial_id, score FROM elites ORDER BY first_seq")]

    def elite_count(self) -> int:
        return int(self._rows("SELECT COUNT(*) FROM elites")[0][0])

    def elite_at(self, index: int) -> Member:
        """The elite of the index-th niche to be filled (0-based)."""
        return _placed(self._rows("SELECT * FROM elites ORDER BY first_seq LIMIT 1 OFFSET ?", (index,))[0])

    def niche_sizes(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._rows("SELECT niche, COUNT(*) FROM placements GROUP BY niche")}

    def add_migration(self, epoch: int, moves: Sequence[tuple[str, Member]]) -> None:
        """Places each (destination niche, member) as a migrant and records the epoch, in one transaction."""
        with self._tx() as db:
            for dest, m in moves:
                _place(db, dest, m.candidate_id, m.trial_id, m.score, "migration")
            db.execute("INSERT INTO island_migrations VALUES (?, ?, ?)",
                       (epoch, _json([{"to": dest, "from": m.niche, "candidate_id": m.candidate_id}
                                      for dest, m in moves]), time.time()))

    def last_migration_epoch(self) -> int:
        return int(self._rows("SELECT COALESCE(MAX(epoch), 0) FROM island_migrations")[0][0])

    def migrations(self) -> list[dict[str, Any]]:
        return [{"epoch": r[0], "moves": json.loads(r[1])}
                for r in self._rows("SELECT epoch, moves FROM island_migrations ORDER BY epoch")]

    # -- transcripts, events, lessons -----------------------------------------------------

    def add_message(self, trial_id: int, role: str, content: Any) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO messages (trial_id, role, content, created_at) VALUES (?, ?, ?, ?)",
                       (trial_id, role, _json(content), time.time()))

    def messages(self, trial_id: int) -> list[dict[str, Any]]:
        return [{"role": r["role"], "content": json.loads(r["content"])}
                for r in self._rows("SELECT role, content FROM messages WHERE trial_id = ? ORDER BY id", (trial_id,))]

    def transcript(self, *, last_trials: int = 20) -> list[dict[str, Any]]:
        """The messages of the latest finished trials that have any, oldest first."""
        rows = self._rows(
            "SELECT role, content FROM messages WHERE trial_id IN (SELECT DISTINCT m.trial_id FROM messages m "
            "JOIN trials t ON t.id = m.trial_id WHERE t.state = 'done' ORDER BY m.trial_id DESC LIMIT ?) ORDER BY id",
            (last_trials,))
        return [{"role": r["role"], "content": json.loads(r["content"])} for r in rows]

    def add_event(self, kind: str, payload: Mapping[str, Any], *, trial_id: int | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO events (ts, trial_id, kind, payload) VALUES (?, ?, ?, ?)",
                       (time.time(), trial_id, kind, _json(dict(payload))))

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM events" + (" WHERE kind = ?" if kind else "") + " ORDER BY id"
        return [{"ts": r["ts"], "trial_id": r["trial_id"], "kind": r["kind"], "payload": json.loads(r["payload"])}
                for r in self._rows(sql, (kind,) if kind else ())]

    def lessons(self, *, skip: int = 0) -> list[tuple[int, str]]:
        """(trial id, lesson) in the order they were learned, after the first `skip` (lessons are never deleted)."""
        rows = self._rows("SELECT trial_id, text FROM lessons WHERE id > ? ORDER BY id", (skip,))
        return [(r[0], r[1]) for r in rows]

    def parents(self, candidate_id: str) -> tuple[str, ...] | None:
        """A stored candidate's parent ids (None for an unknown id), without loading its files."""
        rows = self._rows("SELECT parents FROM candidates WHERE id = ?", (candidate_id,))
        return tuple(json.loads(rows[0][0])) if rows else None


def _member(r: sqlite3.Row) -> Member:
    return Member(seq=r["seq"], candidate_id=r["candidate_id"], trial_id=r["trial_id"], score=r["score"])


def _place(db: sqlite3.Connection, niche: str, candidate_id: str, trial_id: int, score: float, via: str) -> None:
    """Places a version in a niche and keeps the niche's elite (its best placement; ties: the newest) current."""
    seq = db.execute("INSERT INTO placements (niche, candidate_id, trial_id, score, via) VALUES (?, ?, ?, ?, ?)",
                     (niche, candidate_id, trial_id, score, via)).lastrowid
    db.execute("INSERT INTO elites VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(niche) DO UPDATE SET seq = excluded.seq, "
               "candidate_id = excluded.candidate_id, trial_id = excluded.trial_id, score = excluded.score "
               "WHERE excluded.score >= elites.score", (niche, seq, candidate_id, trial_id, score, seq))


def _placed(r: sqlite3.Row) -> Member:
    return Member(seq=r["seq"], candidate_id=r["candidate_id"], trial_id=r["trial_id"], score=r["score"],
                  niche=r["niche"])


def _trial(r: sqlite3.Row) -> Trial:
    return Trial(
        id=r["id"], state=r["state"], operator=r["operator"], parent_id=r["parent_id"],
        candidate_id=r["candidate_id"], model=r["model"], hypothesis=r["hypothesis"], diff=r["diff"],
        status=Status(r["status"]) if r["status"] else None, reason=r["reason"], score=r["score"],
        metrics=json.loads(r["metrics"]), committed=bool(r["committed"]),
        usage=Usage(input_tokens=r["input_tokens"], output_tokens=r["output_tokens"],
                    cache_read_tokens=r["cache_read_tokens"], cache_write_tokens=r["cache_write_tokens"],
                    cost_usd=r["cost_usd"], unpriced_calls=r["unpriced_calls"]),
        started_at=r["started_at"], finished_at=r["finished_at"], wall_s=r["wall_s"], eval_s=r["eval_s"],
        niche=r["niche"], descriptors=json.loads(r["descriptors"]),
    )
