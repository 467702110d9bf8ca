"""The local platform's durable state: clusters, applied resources and service addresses, in SQLite.

WAL mode, one transaction per apply, so a daemon killed at any moment comes
back with every apply either fully there or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from isthmus.model.codec import decode, encode
from isthmus.model.resources import Resource, resource_key
from isthmus.platform.local.settings import MeshSettings

SCHEMA = """
CREATE TABLE IF NOT EXISTS clusters (
    name TEXT PRIMARY KEY,
    idx INTEGER NOT NULL UNIQUE,
    pod_cidr TEXT
);
CREATE TABLE IF NOT EXISTS objects (
    cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (cluster, kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS service_ips (
    cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    ip TEXT NOT NULL,
    PRIMARY KEY (cluster, namespace, name),
    UNIQUE (cluster, ip)
);
CREATE TABLE IF NOT EXISTS mesh_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    body TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class ClusterRow:
    name: str
    index: int
    pod_cidr: str | None


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # clusters

    def clusters(self) -> list[ClusterRow]:
        rows = self._db.execute("SELECT name, idx, pod_cidr FROM clusters ORDER BY idx").fetchall()
        return [ClusterRow(n, i, c) for n, i, c in rows]

    def add_cluster(self, name: str, pod_cidr: str | None = None) -> ClusterRow:
        used = {c.index for c in self.clusters()}
        index = next(i for i in range(len(used) + 1) if i not in used)
        self._db.execute("INSERT INTO clusters (name, idx, pod_cidr) VALUES (?, ?, ?)", (name, index, pod_cidr))
        return ClusterRow(name, index, pod_cidr)

    def remove_cluster(self, name: str) -> None:
        self._db.execute("DELETE FROM clusters WHERE name = ?", (name,))

    # mesh-wide settings (one row)

    def mesh_settings(self) -> MeshSettings | None:
        row = self._db.execute("SELECT body FROM mesh_settings WHERE id = 1").fetchone()
        return MeshSettings.from_json(row[0]) if row else None

    def set_mesh_settings(self, settings: MeshSettings) -> None:
        self._db.execute("INSERT OR REPLACE INTO mesh_settings (id, body) VALUES (1, ?)", (settings.to_json(),))

    # resources

    def objects(self, cluster: str) -> list[Resource]:
        rows = self._db.execute(
            "SELECT body FROM objects WHERE cluster = ? ORDER BY kind, namespace, name", (cluster,)
        ).fetchall()
        return [decode(Resource, json.loads(body)) for (body,) in rows]  # type: ignore[arg-type]

    def write(self, cluster: str, put: Sequence[Resource], delete: Iterable[Resource] = ()) -> None:
        """All or nothing."""
        with self._tx():
            for r in put:
                kind, ns, name = resource_key(r)
                self._db.execute(
                    "INSERT OR REPLACE INTO objects (cluster, kind, namespace, name, body) VALUES (?,?,?,?,?)",
                    (cluster, kind, ns, name, json.dumps(encode(r), sort_keys=True)),
                )
            for r in delete:
                kind, ns, name = resource_key(r)
                self._db.execute(
                    "DELETE FROM objects WHERE cluster=? AND kind=? AND namespace=? AND name=?",
                    (cluster, kind, ns, name),
                )
                if kind == "Service":
                    self._db.execute(
                        "DELETE FROM service_ips WHERE cluster=? AND namespace=? AND name=?",
                        (cluster, ns, name),
                    )

    # service addresses: stable across restarts, like a Service's clusterIP

    def service_ips(self, cluster: str) -> dict[tuple[str, str], str]:
        rows = self._db.execute("SELECT namespace, name, ip FROM service_ips WHERE cluster = ?", (cluster,))
        return {(ns, n): ip for ns, n, ip in rows}

    def set_service_ip(self, cluster: str, namespace: str, name: str, ip: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO service_ips (cluster, namespace, name, ip) VALUES (?,?,?,?)",
            (cluster, namespace, name, ip),
        )

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
