"""Move Arrow columns in and out of a SQLite database, in a process of its own.

`python -m taxdome_qbo.services.sqlite_arrow read` with a JSON request on stdin ({"database": path, "queries":
{name: sql}, "folder": path, "busy_timeout_ms": n}) writes `<folder>/<name>.arrow` for each query, every
query in one read transaction (one snapshot).

`python -m taxdome_qbo.services.sqlite_arrow append` reads a JSON request line on stdin ({"database": path,
"table": name, "busy_timeout_ms": n, "fence": {"sql": sql, "parameters": [...]} or null}), then an Arrow
stream, and appends each batch to the table in a transaction of its own. With a fence, a batch is committed
only if the fence's query, run after the batch's rows are written (SQLite's write lock then held), selects a
row; otherwise nothing more is written and the process exits with FENCED.

Both go through the ADBC SQLite driver, which moves rows between SQLite and Arrow columns in C: several times
faster than a Python object per value. They run apart because that driver brings a SQLite library of its own:
two SQLite libraries in one process break each other's file locks (closing one's file releases the other's
POSIX locks on it, https://www.sqlite.org/howtocorrupt.html#posix_close_bug), and the warehouse's own
connections are open in the process that asks. Apart, the work also runs on a core of its own.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from io import BufferedReader
from pathlib import Path

import adbc_driver_manager
import adbc_driver_sqlite
import pyarrow as pa

# Rows the driver looks at to type a column: all of them (the most it takes). A column NULL in its first
# rows would otherwise be typed as an integer, and a later text in it fail the read.
TYPING_ROWS = 2**30
FENCED = 3  # the exit status of an append stopped by its fence

_APPEND = {"adbc.ingest.mode": "adbc.ingest.mode.append"}


@contextmanager
def _connection(database: str, busy_timeout_ms: int):
    """The driver manager's own objects, not its DB-API module, which imports pandas (1.5 s). Waits up to
    `busy_timeout_ms` where SQLite makes a connection wait (another's write lock, a checkpoint resetting the
    WAL), as the warehouse's own connections do. Yields the connection and a statement."""
    with (
        adbc_driver_sqlite.connect(database) as adbc_database,
        adbc_driver_manager.AdbcConnection(adbc_database) as conn,
        adbc_driver_manager.AdbcStatement(conn) as statement,
    ):
        statement.set_sql_query(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")  # a PRAGMA binds nothing
        statement.execute_query()
        yield conn, statement


def write_arrow_files(database: str, queries: dict[str, str], folder: Path, *, busy_timeout_ms: int) -> None:
    with _connection(database, busy_timeout_ms) as (conn, statement):
        conn.set_autocommit(False)  # every query in one read transaction
        statement.set_options(**{"adbc.sqlite.query.batch_rows": str(TYPING_ROWS)})
        for name, query in queries.items():
            statement.set_sql_query(query)
            table = _query_result(statement)
            with (
                pa.OSFile(str(folder / f"{name}.arrow"), "wb") as sink,
                pa.ipc.new_file(sink, table.schema) as writer,
            ):
                writer.write_table(table)
        conn.rollback()  # ends the read transaction; nothing was written


def _query_result(statement: adbc_driver_manager.AdbcStatement) -> pa.Table:
    stream, _ = statement.execute_query()
    return pa.RecordBatchReader._import_from_c(stream.address).read_all()


def _run(statement: adbc_driver_manager.AdbcStatement, sql: str) -> None:
    statement.set_sql_query(sql)
    statement.execute_update()


def append_stream(
    database: str, table: str, source: BufferedReader, *, fence: dict | None, busy_timeout_ms: int
) -> bool:
    """Append each batch of the Arrow stream `source` to `table`, a transaction each; False when the fence
    stopped it (the batch that found it rolled back, none after it read). The connection stays in autocommit
    mode: the driver's own transactions begin deferred."""
    with (
        _connection(database, busy_timeout_ms) as (conn, statement),
        adbc_driver_manager.AdbcStatement(conn) as fence_statement,
    ):
        if fence is not None:
            fence_statement.set_sql_query(fence["sql"])
            parameters = pa.record_batch(
                [pa.array([value]) for value in fence["parameters"]],
                names=[str(n) for n in range(len(fence["parameters"]))],
            )
        if not source.peek(1):
            return True  # no batch: the asker had nothing to append
        for batch in pa.ipc.open_stream(source):
            # IMMEDIATE: the write lock from the start (waited for as long as the busy timeout allows), so the
            # fence is read under it, and no other writer's commit can come between a read and the write.
            _run(statement, "BEGIN IMMEDIATE")
            statement.set_options(**{"adbc.ingest.target_table": table, **_APPEND})
            statement.bind(batch)
            statement.execute_update()
            if fence is not None:
                fence_statement.bind(parameters)
                if _query_result(fence_statement).num_rows == 0:
                    _run(statement, "ROLLBACK")
                    return False
            _run(statement, "COMMIT")
    return True


def main() -> int:
    if sys.argv[1:] not in (["read"], ["append"]):
        sys.exit(f"usage: python -m taxdome_qbo.services.sqlite_arrow read|append (not {sys.argv[1:]})")
    if sys.argv[1] == "append":
        request = json.loads(sys.stdin.buffer.readline())
        appended = append_stream(
            request["database"],
            request["table"],
            sys.stdin.buffer,
            fence=request["fence"],
            busy_timeout_ms=request["busy_timeout_ms"],
        )
        return 0 if appended else FENCED
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
