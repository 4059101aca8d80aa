"""This host's small SQLite memory: releases, the history of deploys and rollbacks, the active slot.

Containers (labels) and haproxy (runtime state) are the truth about what runs; this store adds what
they cannot tell: which release each id names, who deployed it, and a swap that was started but not
finished, so a crash is recovered by running the command again.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from datetime import datetime
from pathlib import Path

from shipyard.domain.models import HistoryKind, HistoryStatus, PendingSwap, Release, Slot, WorkerStop
from shipyard.domain.preview_host import PreviewAllocation, PreviewSettings, choose_allocation
from shipyard.domain.spec import AppSpec, spec_from_snapshot, spec_snapshot
from shipyard.errors import NotFoundError
from shipyard.host.records import AppRecord, HistoryEntry, utcnow

__all__ = ["AppRecord", "HistoryEntry", "HostStore", "utcnow"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    app TEXT NOT NULL, id TEXT NOT NULL, image TEXT NOT NULL, tag TEXT, digest TEXT NOT NULL,
    spec TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL, PRIMARY KEY (app, id));
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL, kind TEXT NOT NULL, release_id TEXT,
    from_release_id TEXT, to_slot TEXT, from_slot TEXT, status TEXT NOT NULL, actor TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT, message TEXT, steps TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS apps (
    app TEXT PRIMARY KEY, active_slot TEXT, active_release_id TEXT, maintenance INTEGER NOT NULL DEFAULT 0,
    spec TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS standby (
    container TEXT PRIMARY KEY, app TEXT NOT NULL, release_id TEXT NOT NULL, until TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS worker_stop (
    container TEXT PRIMARY KEY, app TEXT NOT NULL, deadline TEXT NOT NULL,
    signalled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS preview_allocation (
    app TEXT PRIMARY KEY, host_name TEXT NOT NULL, pool_index INTEGER NOT NULL UNIQUE,
    port INTEGER NOT NULL UNIQUE, routed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS host_setting (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class HostStore:
    """The Store port on SQLite; specs are serialized (spec_snapshot) here and nowhere else."""

    def __init__(self, path: Path | str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # releases ---------------------------------------------------------------------------------
    def next_release_id(self, app: str) -> str:
        rows = self.db.execute("SELECT id FROM releases WHERE app = ?", (app,)).fetchall()
        numbers = [int(r["id"][1:]) for r in rows if re.fullmatch(r"r[0-9]{1,18}", r["id"])]
        return f"r{max(numbers, default=0) + 1}"

    def save_release(self, release: Release) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO releases VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                release.app,
                release.id,
                release.image,
                release.tag,
                release.digest,
                _snapshot(release.app_spec),
                release.created_at.isoformat(),
                release.created_by,
            ),
        )

    def release(self, app: str, release_id: str) -> Release:
        row = self.db.execute("SELECT * FROM releases WHERE app = ? AND id = ?", (app, release_id)).fetchone()
        if row is None:
            raise NotFoundError(
                f"release {release_id} of {app} is not known on this host; see 'shipyard releases'."
            )
        return _release(row)

    def releases(self, app: str) -> list[Release]:
        rows = self.db.execute("SELECT * FROM releases WHERE app = ? ORDER BY rowid DESC", (app,))
        return [_release(r) for r in rows]

    def find_release(self, app: str, digest: str, spec: AppSpec) -> Release | None:
        wanted = _snapshot(spec)
        rows = self.db.execute(
            "SELECT * FROM releases WHERE app = ? AND digest = ? AND spec = ? ORDER BY rowid DESC",
            (app, digest, wanted),
        )
        row = rows.fetchone()
        return _release(row) if row else None

    # history ----------------------------------------------------------------------------------
    def begin(
        self, app: str, kind: HistoryKind, release_id: str | None, actor: str, from_release_id: str | None
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO history (app, kind, release_id, from_release_id, status, actor, started_at) "
            "VALUES (?, ?, ?, ?, 'running', ?, ?)",
            (app, kind, release_id, from_release_id, actor, utcnow().isoformat()),
        )
        return int(cursor.lastrowid or 0)

    def mark_swap(self, history_id: int, to_slot: Slot, from_slot: Slot | None) -> None:
        self.db.execute(
            "UPDATE history SET to_slot = ?, from_slot = ? WHERE id = ?", (to_slot, from_slot, history_id)
        )

    def log_step(self, history_id: int, line: str) -> None:
        row = self.db.execute("SELECT steps FROM history WHERE id = ?", (history_id,)).fetchone()
        steps = json.loads(row["steps"]) if row else []
        steps.append(line)
        self.db.execute("UPDATE history SET steps = ? WHERE id = ?", (json.dumps(steps), history_id))

    def finish(self, history_id: int, status: HistoryStatus, message: str | None = None) -> None:
        self.db.execute(
            "UPDATE history SET status = ?, finished_at = ?, message = ? WHERE id = ?",
            (status, utcnow().isoformat(), message, history_id),
        )

    def pending(self, app: str) -> PendingSwap | None:
        row = self.db.execute(
            "SELECT * FROM history WHERE app = ? AND status = 'running' ORDER BY id DESC LIMIT 1", (app,)
        ).fetchone()
        if row is None:
            return None
        return PendingSwap(row["id"], row["release_id"] or "", row["to_slot"] or "blue", row["from_slot"])

    def history(self, app: str, limit: int = 50) -> list[HistoryEntry]:
        rows = self.db.execute("SELECT * FROM history WHERE app = ? ORDER BY id DESC LIMIT ?", (app, limit))
        return [
            HistoryEntry(
                id=r["id"],
                app=r["app"],
                kind=r["kind"],
                release_id=r["release_id"],
                from_release_id=r["from_release_id"],
                status=r["status"],
                actor=r["actor"],
                started_at=r["started_at"],
                finished_at=r["finished_at"],
                message=r["message"],
                steps=json.loads(r["steps"]),
            )
            for r in rows
        ]

    # active app state -------------------------------------------------------------------------
    def app(self, app: str) -> AppRecord | None:
        row = self.db.execute("SELECT * FROM apps WHERE app = ?", (app,)).fetchone()
        if row is None:
            return None
        return AppRecord(
            app=row["app"],
            active_slot=row["active_slot"],
            active_release_id=row["active_release_id"],
            maintenance=bool(row["maintenance"]),
            spec=spec_from_snapshot(json.loads(row["spec"])),
            updated_at=row["updated_at"],
        )

    def apps(self) -> list[AppRecord]:
        names = [r["app"] for r in self.db.execute("SELECT app FROM apps ORDER BY app")]
        return [record for name in names if (record := self.app(name)) is not None]

    def set_active(self, app: str, slot: Slot | None, release_id: str | None, spec: AppSpec) -> None:
        self.db.execute(
            "INSERT INTO apps (app, active_slot, active_release_id, maintenance, spec, updated_at) "
            "VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT(app) DO UPDATE SET active_slot = excluded.active_slot, "
            "active_release_id = excluded.active_release_id, maintenance = 0, spec = excluded.spec, "
            "updated_at = excluded.updated_at",
            (app, slot, release_id, _snapshot(spec), utcnow().isoformat()),
        )

    def set_maintenance(self, app: str, on: bool) -> None:
        self.db.execute(
            "UPDATE apps SET maintenance = ?, updated_at = ? WHERE app = ?",
            (int(on), utcnow().isoformat(), app),
        )

    def drop_app(self, app: str) -> None:
        """The app leaves haproxy's config (rendered from this table) and has no standby left."""
        self.db.execute("DELETE FROM apps WHERE app = ?", (app,))
        self.db.execute("DELETE FROM standby WHERE app = ?", (app,))

    def forget_app(self, app: str) -> None:
        """Everything recorded about the app: releases, history, record, standbys, a preview's ports."""
        for table in ("releases", "history", "apps", "standby", "worker_stop", "preview_allocation"):
            self.db.execute(f"DELETE FROM {table} WHERE app = ?", (app,))

    # previews ---------------------------------------------------------------------------------
    def preview_settings(self) -> PreviewSettings | None:
        row = self.db.execute("SELECT value FROM host_setting WHERE key = 'previews'").fetchone()
        return None if row is None else PreviewSettings(**json.loads(row["value"]))

    def set_preview_settings(self, settings: PreviewSettings) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO host_setting VALUES ('previews', ?)",
            (json.dumps(dataclasses.asdict(settings), sort_keys=True),),
        )

    def allocate_preview(self, app: str, host_name: str, settings: PreviewSettings) -> PreviewAllocation:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.set_preview_settings(settings)
            allocation = self.preview_allocation(app)
            if allocation is None:
                allocation = choose_allocation(app, host_name, settings, self.preview_allocations())
                self.db.execute(
                    "INSERT INTO preview_allocation VALUES (?, ?, ?, ?, 0)",
                    (app, allocation.host_name, allocation.index, allocation.port),
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return allocation

    def preview_allocation(self, app: str) -> PreviewAllocation | None:
        row = self.db.execute("SELECT * FROM preview_allocation WHERE app = ?", (app,)).fetchone()
        return None if row is None else _allocation(row)

    def preview_allocations(self) -> list[PreviewAllocation]:
        rows = self.db.execute("SELECT * FROM preview_allocation ORDER BY pool_index")
        return [_allocation(row) for row in rows]

    def set_preview_routed(self, app: str, routed: bool) -> None:
        self.db.execute("UPDATE preview_allocation SET routed = ? WHERE app = ?", (int(routed), app))

    # warm standbys ----------------------------------------------------------------------------
    def add_standby(self, app: str, container: str, release_id: str, until: datetime) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO standby VALUES (?, ?, ?, ?)",
            (container, app, release_id, until.isoformat()),
        )

    def standbys(self, app: str) -> dict[str, datetime]:
        rows = self.db.execute("SELECT container, until FROM standby WHERE app = ?", (app,))
        return {r["container"]: datetime.fromisoformat(r["until"]) for r in rows}

    def drop_standby(self, container: str) -> None:
        self.db.execute("DELETE FROM standby WHERE container = ?", (container,))

    # old workers finishing after their stop signal -----------------------------------------------
    def add_worker_stop(self, app: str, container: str, deadline: datetime) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO worker_stop VALUES (?, ?, ?, 0)", (container, app, deadline.isoformat())
        )

    def mark_worker_signalled(self, container: str) -> None:
        self.db.execute("UPDATE worker_stop SET signalled = 1 WHERE container = ?", (container,))

    def worker_stops(self, app: str) -> dict[str, WorkerStop]:
        rows = self.db.execute("SELECT * FROM worker_stop WHERE app = ?", (app,))
        return {
            r["container"]: WorkerStop(
                r["container"], datetime.fromisoformat(r["deadline"]), bool(r["signalled"])
            )
            for r in rows
        }

    def drop_worker_stop(self, container: str) -> None:
        self.db.execute("DELETE FROM worker_stop WHERE container = ?", (container,))


def _allocation(row: sqlite3.Row) -> PreviewAllocation:
    return PreviewAllocation(
        row["app"], row["host_name"], int(row["pool_index"]), int(row["port"]), bool(row["routed"])
    )


def _release(row: sqlite3.Row) -> Release:
    return Release(
        id=row["id"],
        app=row["app"],
        image=row["image"],
        digest=row["digest"],
        app_spec=spec_from_snapshot(json.loads(row["spec"])),
        created_at=datetime.fromisoformat(row["created_at"]),
        created_by=row["created_by"],
        tag=row["tag"],
    )


def _snapshot(spec: AppSpec) -> str:
    return json.dumps(spec_snapshot(spec), sort_keys=True)
