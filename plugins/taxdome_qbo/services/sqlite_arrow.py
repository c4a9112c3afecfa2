"""Read SQLite queries into Arrow files, in a process of its own: `python -m taxdome_qbo.services.sqlite_arrow`
with a JSON request on stdin ({"database": path, "queries": {name: sql}, "folder": path, "busy_timeout_ms":
n}) writes `<folder>/<name>.arrow` for each query, every query in one read transaction (one snapshot).

It reads through the ADBC SQLite driver, which turns rows into Arrow columns in C: several times faster than
a Python object per value. It runs apart because that driver brings a SQLite library of its own: two SQLite
libraries in one process break each other's file locks (closing one's file releases the other's POSIX locks
on it, https://www.sqlite.org/howtocorrupt.html#posix_close_bug), and the warehouse's own connections are
open in the process that asks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import adbc_driver_manager
import adbc_driver_sqlite
import pyarrow as pa

# Rows the driver looks at to type a column: all of them (the most it takes). A column NULL in its first
# rows would otherwise be typed as an integer, and a later text in it fail the read.
TYPING_ROWS = 2**30


def write_arrow_files(database: str, queries: dict[str, str], folder: Path, *, busy_timeout_ms: int) -> None:
    """Through the driver manager's own objects, not its DB-API module, which imports pandas (1.5 s). Waits
    up to `busy_timeout_ms` where SQLite makes even a reader wait (a checkpoint resetting the WAL), as the
    warehouse's own connections do."""
    with (
        adbc_driver_sqlite.connect(database) as adbc_database,
        adbc_driver_manager.AdbcConnection(adbc_database) as conn,
        adbc_driver_manager.AdbcStatement(conn) as statement,
    ):
        statement.set_sql_query(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")  # a PRAGMA binds nothing
        statement.execute_query()
        conn.set_autocommit(False)  # every query in one read transaction
        statement.set_options(**{"adbc.sqlite.query.batch_rows": str(TYPING_ROWS)})
        for name, query in queries.items():
            statement.set_sql_query(query)
            stream, _ = statement.execute_query()
            table = pa.RecordBatchReader._import_from_c(stream.address).read_all()
            with (
                pa.OSFile(str(folder / f"{name}.arrow"), "wb") as sink,
                pa.ipc.new_file(sink, table.schema) as writer,
            ):
                writer.write_table(table)
        conn.rollback()  # ends the read transaction; nothing was written


def main() -> int:
    request = json.load(sys.stdin)
    write_arrow_files(
        request["database"],
        request["queries"],
        Path(request["folder"]),
        busy_timeout_ms=request["busy_timeout_ms"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
