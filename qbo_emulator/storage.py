"""SQLite persistence: every record is a JSON document keyed by (scope, kind, key).

The emulator works on in-memory state and writes each request's changes here in one transaction, so the
file always holds a consistent state that a restart loads back.
"""

import sqlite3
from collections.abc import Iterable, Iterator

from qbo_emulator import jsonutil

Record = tuple[str, str, str, dict]
DECODED_TOGETHER = 5000


class Storage:
    def __init__(self, path: str | None):
        self._connection = sqlite3.connect(path or ":memory:", isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS records (scope TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, "
            "data TEXT NOT NULL, PRIMARY KEY (scope, kind, key))"
        )

    def load(self) -> Iterator[Record]:
        decoder = jsonutil.SharingDecoder()
        cursor = self._connection.execute("SELECT scope, kind, key, data FROM records")
        while rows := cursor.fetchmany(DECODED_TOGETHER):
            for (scope, kind, key, _), data in zip(
                rows, decoder.loads([row[3] for row in rows]), strict=True
            ):
                yield scope, kind, key, data

    def write(self, upserts: Iterable[Record], deletions: Iterable[tuple[str, str, str]] = ()) -> None:
        cursor = self._connection.cursor()
        cursor.execute("BEGIN")
        try:
            cursor.executemany(
                "INSERT OR REPLACE INTO records (scope, kind, key, data) VALUES (?, ?, ?, ?)",
                [(scope, kind, key, jsonutil.dumps(data)) for scope, kind, key, data in upserts],
            )
            cursor.executemany(
                "DELETE FROM records WHERE scope = ? AND kind = ? AND key = ?", list(deletions)
            )
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    def clear(self) -> None:
        self._connection.execute("DELETE FROM records")

    def close(self) -> None:
        self._connection.close()
