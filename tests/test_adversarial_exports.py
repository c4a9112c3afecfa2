"""Issue 10, the export intake: broken exports never delete what TaxDome still has, bad bytes are data (a
quarantined row or a contract error naming file and line), never a crash, on SQLite and PostgreSQL.

Cases: 2 (a stray quote swallowing payments), 3 (a half-copied export), 7 (NUL and control bytes, a field
beyond the csv module's limit, a directory or FIFO named like a CSV), 12 (a symbolic link out of the
export), 13 (two headers for one column, absurd headers, a stage killed mid-way). Then a corpus of broken
exports with their expected outcomes, and properties of the reader and of deletions (hypothesis).
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from export_builder import BASE_EXPORT, stage_and_hang, validate_folder, with_rows, write_export
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from load_harness import (
    BASE_FIRM_SETTINGS,
    Firm,
    company_for_base_export,
    load,
    plan,
    session_for,
    stage,
)

from taxdome_qbo.core.export_contract import PAYMENTS, SUCCESS_MARKER, ExportContractError
from taxdome_qbo.core.validation import validate_export
from taxdome_qbo.services import staging, warehouse
from taxdome_qbo.services.export_reader import ExportReader
from taxdome_qbo.services.landing import unloaded_exports, write_manifest

PAYMENTS_HEADER = BASE_EXPORT["payments.csv"].splitlines()[0]


def payment_row(n: int, description: str = "") -> str:
    """An unapplied cash payment of A1 (no fee, no refund, in no payout): it stands on its own."""
    return f"P{n},A1,2026-01-{1 + n % 28:02d},{10 + n}.00,cash,none,,0,USD,true,{description},2026-01-20T09:00:00Z"


def payments_csv(numbers, **descriptions: str) -> str:
    """payments.csv with the base payments P1, P2 and cash payments P<n>; `descriptions` as `P7="..."`."""
    rows = [payment_row(n, descriptions.get(f"P{n}", "")) for n in numbers]
    return with_rows("payments.csv", *rows)


def with_manifest(folder: Path, payments: int | None = None) -> Path:
    """Mark the export complete with a manifest: the base files' rows, and `payments` records written."""
    rows = {name: text.count("\n") - 1 for name, text in BASE_EXPORT.items()}
    write_manifest(folder, rows if payments is None else rows | {"payments.csv": payments})
    return folder


def batch_row(engine, batch_id: str):
    with engine.connect() as conn:
        return conn.execute(
            sa.select(warehouse.export_batches).where(warehouse.export_batches.c.batch_id == batch_id)
        ).one()


def absence_marks(engine, name: str) -> dict[str, str | None]:
    table = warehouse.STAGING_TABLES[name]
    key = table.c[f"{name[:-1]}_id"]
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(key, table.c._absent_since_batch)).all())


def planned_deletions(engine, run_id: str) -> list[tuple[str, str]]:
    plan_table = warehouse.sync_plan
    with engine.connect() as conn:
        return conn.execute(
            sa.select(plan_table.c.taxdome_kind, plan_table.c.taxdome_id).where(
                plan_table.c.run_id == run_id, plan_table.c.action == "delete"
            )
        ).all()


def sync(engine, emulator, company, export: Path, run_id: str):
    """Stage, plan (`full` mode, mass deletion allowed: the guard is not what protects here) and load."""
    stage(engine, export)
    session = session_for(engine, emulator, company)
    plan(engine, session, Firm(export, BASE_FIRM_SETTINGS), run_id, allow_mass_delete=True)
    return load(engine, session, run_id)


# ---- case 2: a stray quote swallows payments ------------------------------------------------------------

SWALLOWING = payments_csv(
    range(3, 8),
    # P4's description opens a quote that P6's description closes: P5 and P6 vanish inside one record of
    # exactly the header's width, which reads as a valid payment P4.
    P4='"Paid by check',
    P6='see note"',
)


def test_a_stray_quote_swallowing_payments_deletes_nothing_in_quickbooks(
    warehouse_engine, emulator, tmp_path
):
    engine = warehouse_engine
    company = company_for_base_export(emulator)
    first = sync(
        engine, emulator, company, write_export(tmp_path / "e1", payments_csv=payments_csv(range(3, 8))), "r1"
    )
    assert first.failed == 0, first.as_xcom()

    broken = write_export(tmp_path / "e2", payments_csv=SWALLOWING)
    result = staging.stage_export(engine, broken)
    session = session_for(engine, emulator, company)
    plan(engine, session, Firm(broken, BASE_FIRM_SETTINGS), "r2", allow_mass_delete=True)

    payments = next(f for f in result.files if f.source_file == "payments.csv")
    assert (payments.rows_read, payments.rows_staged) == (5, 5)  # 7 records written, P5 and P6 swallowed
    assert not result.deletion_proof
    assert "payments.csv: 1 record(s) span several lines, the first at line 5" in result.deletion_proof_reason
    assert planned_deletions(engine, "r2") == []
    assert absence_marks(engine, "payments") == dict.fromkeys(["P1", "P2", "P3", "P4", "P5", "P6", "P7"])
    assert batch_row(engine, result.batch_id).deletion_proof in (False, 0)


def test_a_stray_quote_against_a_manifest_fails_the_export_naming_the_file(warehouse_engine, tmp_path):
    folder = with_manifest(
        write_export(tmp_path / "export", marker=None, payments_csv=SWALLOWING), payments=7
    )
    with pytest.raises(ExportContractError, match=r"payments\.csv: 5 records read, manifest\.json says 7"):
        staging.stage_export(warehouse_engine, folder)


# ---- case 3: a half-copied export ---------------------------------------------------------------------


def test_the_landing_scan_waits_for_a_marker_and_skips_partial_and_hidden_folders(warehouse_engine, tmp_path):
    landing = tmp_path / "landing"
    write_export(landing / "2026-11-01T0900", marker=None)  # still being copied
    write_export(landing / "2026-11-02T0900.partial")
    write_export(landing / ".2026-11-03T0900")
    write_export(landing / "2026-11-04T0900")
    with_manifest(write_export(landing / "2026-11-05T0900", marker=None))

    assert [p.name for p in unloaded_exports(warehouse_engine, landing)] == [
        "2026-11-04T0900",
        "2026-11-05T0900",
    ]
    (landing / "2026-11-01T0900" / SUCCESS_MARKER).write_text("")
    assert [p.name for p in unloaded_exports(warehouse_engine, landing)] == [
        "2026-11-01T0900",
        "2026-11-04T0900",
        "2026-11-05T0900",
    ]


def test_a_folder_loaded_and_then_completed_is_loaded_again(warehouse_engine, tmp_path):
    landing = tmp_path / "landing"
    folder = write_export(landing / "2026-11-01T0900", payments_csv=payments_csv(range(3, 8)))
    staging.stage_export(warehouse_engine, folder)
    assert unloaded_exports(warehouse_engine, landing) == []

    (folder / "payments.csv").write_text(payments_csv(range(3, 20)), encoding="utf-8")  # the finished copy
    assert [p.name for p in unloaded_exports(warehouse_engine, landing)] == ["2026-11-01T0900"]
    staging.stage_export(warehouse_engine, folder)
    assert unloaded_exports(warehouse_engine, landing) == []
    assert len(absence_marks(warehouse_engine, "payments")) == 19


def test_a_half_copied_payments_file_without_marker_deletes_nothing(warehouse_engine, emulator, tmp_path):
    engine = warehouse_engine
    company = company_for_base_export(emulator)
    whole = payments_csv(range(3, 8))
    first = sync(engine, emulator, company, write_export(tmp_path / "e1", payments_csv=whole), "r1")
    assert first.failed == 0, first.as_xcom()

    cut = whole[: whole.index("P5,")] + "P5,A1,2026-01"  # the copy stopped in the middle of P5
    half = write_export(tmp_path / "e2", marker=None, payments_csv=cut)
    result = staging.stage_export(engine, half)
    plan(
        engine,
        session_for(engine, emulator, company),
        Firm(half, BASE_FIRM_SETTINGS),
        "r2",
        allow_mass_delete=True,
    )

    assert result.total("rows_staged") > 0
    assert result.deletion_proof_reason.startswith("no completion marker (_SUCCESS or manifest.json)")
    assert "payments.csv: 1 malformed record(s), the first at line 6" in result.deletion_proof_reason
    assert planned_deletions(engine, "r2") == []


def test_a_file_that_shrank_a_lot_proves_no_deletion_until_the_next_export_confirms_it(
    warehouse_engine, tmp_path
):
    staging.stage_export(
        warehouse_engine, write_export(tmp_path / "1", payments_csv=payments_csv(range(3, 33)))
    )
    shrunk = staging.stage_export(
        warehouse_engine, write_export(tmp_path / "2", payments_csv=payments_csv(range(3, 18)))
    )
    assert not shrunk.deletion_proof
    assert (
        "payments.csv: 17 rows, 32 at the previous load (more than 20% fewer" in shrunk.deletion_proof_reason
    )
    assert set(absence_marks(warehouse_engine, "payments").values()) == {None}

    confirmed = staging.stage_export(
        warehouse_engine, write_export(tmp_path / "3", payments_csv=payments_csv(range(3, 18)))
    )
    assert confirmed.deletion_proof, confirmed.deletion_proof_reason
    marks = absence_marks(warehouse_engine, "payments")
    assert {p for p, mark in marks.items() if mark} == {f"P{n}" for n in range(18, 33)}


def test_an_export_older_than_one_loaded_proves_no_deletion(warehouse_engine, tmp_path):
    staging.stage_export(
        warehouse_engine, write_export(tmp_path / "2026-11-02", payments_csv=payments_csv([3]))
    )
    older = staging.stage_export(warehouse_engine, write_export(tmp_path / "2026-11-01"))
    assert older.deletion_proof_reason == "a later export (2026-11-02) was loaded already"
    assert absence_marks(warehouse_engine, "payments")["P3"] is None


# ---- the mass-delete guard, whatever the cause -----------------------------------------------------------


@pytest.mark.parametrize("cause", ["absent_from_the_export", "unsynced_in_taxdome"])
def test_the_mass_delete_guard_refuses_deletions_whatever_their_cause(
    warehouse_engine, emulator, tmp_path, cause
):
    from taxdome_qbo.core.planner import PlanRefused

    engine = warehouse_engine
    company = company_for_base_export(emulator)
    first = sync(
        engine, emulator, company, write_export(tmp_path / "e1", payments_csv=payments_csv(range(3, 8))), "r1"
    )
    assert first.failed == 0, first.as_xcom()
    if cause == "absent_from_the_export":
        second = payments_csv([3])
    else:
        second = payments_csv(range(3, 8)).replace(",true,,", ",false,,")  # every payment's sync turned off
    export = write_export(tmp_path / "e2", payments_csv=second)
    stage(engine, export)
    with pytest.raises(PlanRefused, match=r"more than 5%"):
        plan(engine, session_for(engine, emulator, company), Firm(export, BASE_FIRM_SETTINGS), "r2")
    # The refused plan leaves nothing, though its operations were written as they were planned.
    for table in (warehouse.sync_plan, warehouse.sync_object_status, warehouse.sync_plan_runs):
        with engine.connect() as conn:
            runs = conn.execute(sa.select(table.c.run_id).distinct()).scalars().all()
        assert runs == ["r1"], table.name


# ---- case 7: bad bytes ---------------------------------------------------------------------------------


def test_nul_and_control_bytes_quarantine_their_row_alike_on_sqlite_and_postgresql(
    warehouse_engine, tmp_path
):
    payments = payments_csv([3, 4], P3="paid\x00in cash", P4="bell\x07")
    result = staging.stage_export(warehouse_engine, write_export(tmp_path / "export", payments_csv=payments))
    with warehouse_engine.connect() as conn:
        rejected = conn.execute(
            sa.select(warehouse.rejected_rows.c.source_line, warehouse.rejected_rows.c.reason).where(
                warehouse.rejected_rows.c.source_file == "payments.csv"
            )
        ).all()
    assert sorted(rejected) == [
        (4, "description holds a control character (\\x00)"),
        (5, "description holds a control character (\\x07)"),
    ]
    assert result.deletion_proof  # the rows are identified: quarantined, not lost


def test_a_field_beyond_the_csv_limit_names_file_and_line(tmp_path):
    huge = '"' + "x" * 140_000 + "\nmore"  # a quoted line break sends the file to the csv module
    folder = write_export(tmp_path / "export", payments_csv=payments_csv([3, 4], P4=huge + '"'))
    with pytest.raises(
        ExportContractError, match=r"payments\.csv line 5: the record starting here cannot be read"
    ):
        validate_folder(folder)


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_directory_or_fifo_named_like_a_csv_is_a_contract_error(warehouse_engine, tmp_path, kind):
    folder = write_export(tmp_path / "export", refunds_csv=None)
    if kind == "directory":
        (folder / "refunds.csv").mkdir()
    else:
        os.mkfifo(folder / "refunds.csv")
    with pytest.raises(ExportContractError, match=r"refunds\.csv is (a directory|not a regular file)"):
        staging.stage_export(warehouse_engine, folder)
    assert batch_status(warehouse_engine) == ["failed"]


def batch_status(engine) -> list[str]:
    with engine.connect() as conn:
        return conn.execute(sa.select(warehouse.export_batches.c.status)).scalars().all()


# ---- case 12: a symbolic link out of the export ---------------------------------------------------------


def test_a_symlink_out_of_the_export_is_refused_without_echoing_its_target(tmp_path):
    secret = tmp_path / "elsewhere" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    folder = write_export(tmp_path / "export", accounts_csv=None)
    (folder / "accounts.csv").symlink_to(secret)
    with pytest.raises(ExportContractError) as raised:
        ExportReader(folder)
    assert str(raised.value) == "accounts.csv is a symbolic link leading out of the export folder"
    assert "root" not in str(raised.value)


def test_a_symlink_inside_the_export_is_read(tmp_path):
    folder = write_export(tmp_path / "export", accounts_csv=None)
    (folder / "accounts-2026.csv").write_text(BASE_EXPORT["accounts.csv"])
    (folder / "accounts.csv").symlink_to(folder / "accounts-2026.csv")
    assert len(validate_folder(folder)["accounts"].staged) == 2


# ---- case 13: headers, and a stage killed mid-way -------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (PAYMENTS_HEADER + ",Payment #", r"columns 1 'payment_id' and 13 'Payment #' both mean payment_id"),
        (PAYMENTS_HEADER + ",amount", r"columns 4 'amount' and 13 'amount' both mean amount"),
        (PAYMENTS_HEADER + ",x" * 1_000, r"the header has more than 1,000 columns"),
        (PAYMENTS_HEADER + "," + "y" * (1 << 20), r"the header line is longer than 1,048,576 bytes"),
    ],
    ids=["alias_and_canonical", "same_name_twice", "too_many_columns", "too_long"],
)
def test_duplicate_and_absurd_headers_are_contract_errors(tmp_path, header, message):
    body = "".join(line + "\n" for line in BASE_EXPORT["payments.csv"].splitlines()[1:])
    folder = write_export(tmp_path / "export", payments_csv=f"{header}\n{body}")
    with pytest.raises(ExportContractError, match=message):
        ExportReader(folder)


def test_a_header_of_a_million_columns_fails_fast(tmp_path):
    folder = write_export(tmp_path / "export", payments_csv=",".join(["c"] * 1_000_000) + "\n")
    clock = time.perf_counter()
    with pytest.raises(ExportContractError, match=r"the header (has more than 1,000 columns|line is longer)"):
        ExportReader(folder)
    assert time.perf_counter() - clock < 1


def _spec(engine, tmp_path, request) -> dict:
    if engine.dialect.name == "sqlite":
        return {"sqlite": str(tmp_path / "warehouse.db")}
    return {"postgres": request.getfixturevalue("postgres_schema")}


def test_a_stage_killed_mid_way_is_swept_as_abandoned_by_the_next(warehouse_engine, tmp_path, request):
    engine = warehouse_engine
    warehouse.create_schema(engine)
    folder = write_export(tmp_path / "export")
    child = multiprocessing.get_context("spawn").Process(
        target=stage_and_hang, args=(_spec(engine, tmp_path, request), str(folder))
    )
    child.start()
    deadline = time.monotonic() + 60
    while batch_status(engine) != ["running"] and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # inside its transaction by now, or about to be: either way it dies `running`
    child.kill()
    child.join()
    assert batch_status(engine) == ["running"]  # what kill -9 leaves behind
    if engine.dialect.name == "sqlite":
        # SQLite cannot tell a dead stage from one about to take the write lock until SQLITE_START_GRACE.
        with engine.begin() as conn:
            conn.execute(
                warehouse.export_batches.update().values(started_at=sa.func.datetime("now", "-3 minutes"))
            )

    staging.stage_export(engine, folder)

    with engine.connect() as conn:
        batches = conn.execute(
            sa.select(warehouse.export_batches.c.status, warehouse.export_batches.c.error).order_by(
                warehouse.export_batches.c.started_at
            )
        ).all()
    assert [b.status for b in batches] == ["failed", "succeeded"]
    assert batches[0].error.startswith("abandoned: its stage ended before it finished")


def test_a_live_stage_is_not_swept(warehouse_engine, tmp_path):
    engine = warehouse_engine
    warehouse.create_schema(engine)
    live = "f" * 32
    with engine.begin() as conn:
        conn.execute(
            warehouse.export_batches.insert().values(
                batch_id=live,
                export_location="x",
                export_name="x",
                status="running",
                started_at=sa.func.now(),
            )
        )
    with staging._held_while_alive(engine, live):  # on SQLite, recent enough to be alive
        staging.stage_export(engine, write_export(tmp_path / "export"))
    assert sorted(batch_status(engine)) == ["running", "succeeded"]


# ---- the corpus: broken exports and what becomes of them, on both databases ------------------------------

CORPUS = {
    # name: (changes to the base export, marker, expected: error text, or (payments staged, rejected, proof))
    "clean": ({}, SUCCESS_MARKER, (2, 0, True)),
    "no_marker": ({}, None, (2, 0, False)),
    "ragged_row": (
        {"payments_csv": with_rows("payments.csv", "P3,A1,2026-01-09,5.00,cash")},
        SUCCESS_MARKER,
        (2, 1, False),
    ),
    "quoted_line_break": (
        {"payments_csv": payments_csv([3], P3='"line one\nline two"')},
        SUCCESS_MARKER,
        (3, 0, False),
    ),
    "missing_key": (
        {"payments_csv": with_rows("payments.csv", ",A1,2026-01-09,5.00,cash,none,,0,USD,true,,")},
        SUCCESS_MARKER,
        (2, 1, False),
    ),
    "bad_amount": (
        {"payments_csv": with_rows("payments.csv", "P3,A1,2026-01-09,5.0.0,cash,none,,0,USD,true,,")},
        SUCCESS_MARKER,
        (2, 1, True),
    ),
    "nul_byte": ({"payments_csv": payments_csv([3], P3="a\x00b")}, SUCCESS_MARKER, (2, 1, True)),
    "bom_and_crlf": (
        {"payments_csv": "\ufeff" + BASE_EXPORT["payments.csv"].replace("\n", "\r\n")},
        SUCCESS_MARKER,
        (2, 0, True),
    ),
    "unclosed_quote_to_the_end": (
        {"payments_csv": payments_csv([3, 4], P3='"never closed')},
        SUCCESS_MARKER,
        (2, 1, False),
    ),
    "not_utf8": (
        {
            "payments_csv": BASE_EXPORT["payments.csv"]
            + "P3,A1,2026-01-09,5.00,cash,none,,0,USD,true,Ren\udce9,\n"
        },
        SUCCESS_MARKER,
        "payments.csv is not UTF-8 text (line 4",
    ),
    "duplicate_header": (
        {"payments_csv": BASE_EXPORT["payments.csv"].replace("description", "amount", 1)},
        SUCCESS_MARKER,
        "columns 4 'amount' and 11 'amount' both mean amount",
    ),
    "missing_file": ({"refunds_csv": None}, SUCCESS_MARKER, "lacks required files: refunds.csv"),
    "empty_file": ({"payments_csv": ""}, SUCCESS_MARKER, "payments.csv is empty: it needs a header row"),
}


def _write_corpus_export(folder: Path, changes: dict, marker: str | None) -> Path:
    text = {k: v for k, v in changes.items() if v is None or "\udce9" not in v}
    write_export(folder, marker=marker, **text)
    for key, value in changes.items():
        if value is not None and "\udce9" in value:  # a latin-1 byte where UTF-8 was due
            (folder / key.replace("_csv", ".csv")).write_bytes(value.encode("utf-8", "surrogateescape"))
    return folder


@pytest.mark.parametrize(("changes", "marker", "expected"), CORPUS.values(), ids=CORPUS.keys())
def test_the_corpus_of_broken_exports(warehouse_engine, tmp_path, changes, marker, expected):
    folder = _write_corpus_export(tmp_path / "export", changes, marker)
    if isinstance(expected, str):
        with pytest.raises(ExportContractError, match=expected.replace("(", r"\(").replace(".", r"\.")):
            staging.stage_export(warehouse_engine, folder)
        assert batch_status(warehouse_engine) == ["failed"]
        return
    result = staging.stage_export(warehouse_engine, folder)
    payments = next(f for f in result.files if f.source_file == "payments.csv")
    assert (payments.rows_staged, payments.rows_rejected, result.deletion_proof) == expected, (
        result.deletion_proof_reason
    )
    assert all(f.rows_read == f.rows_staged + f.rows_rejected for f in result.files)


# ---- properties ----------------------------------------------------------------------------------------

_CHARACTERS = st.sampled_from(["a", "Z", "7", ".", " ", ",", '"', "\n", "\r", "\t", "\x00", "é", "€", "中"])
_FIELD = st.text(_CHARACTERS, max_size=6)
_WELL_FORMED = st.lists(_FIELD, min_size=len(PAYMENTS.columns), max_size=len(PAYMENTS.columns))
_RAGGED = st.lists(_FIELD, min_size=2, max_size=len(PAYMENTS.columns) + 3).filter(
    lambda fields: len(fields) != len(PAYMENTS.columns)
)
# A record written by a broken writer: fields joined as they are, one of them opening a quote it never closes.
_STRAY_QUOTE = st.tuples(_WELL_FORMED, st.integers(0, len(PAYMENTS.columns) - 1)).map(
    lambda drawn: ",".join(
        '"' + f if i == drawn[1] else f.replace('"', "").replace("\n", "").replace("\r", "")
        for i, f in enumerate(drawn[0])
    )
)
_RECORDS = st.lists(
    st.one_of(
        _WELL_FORMED.map(lambda r: ("csv", r)),
        _RAGGED.map(lambda r: ("csv", r)),
        _STRAY_QUOTE.map(lambda r: ("raw", r)),
    ),
    max_size=8,
)


def _payments_file(records: list[tuple[str, object]]) -> str:
    out = io.StringIO(newline="")
    out.write(PAYMENTS_HEADER + "\n")
    writer = csv.writer(out, lineterminator="\n")
    for how, record in records:
        if how == "csv":
            writer.writerow(record)
        else:
            out.write(record + "\n")
    return out.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=_RECORDS)
def test_the_reader_never_loses_a_record_silently(records):
    """Records written = staged + rejected; or the file fails with a contract error; or the export says it
    cannot prove a deletion (a record it may have lost cannot be taken as deleted)."""
    with tempfile.TemporaryDirectory() as directory:
        folder = write_export(Path(directory), payments_csv=_payments_file(records))
        try:
            reader = ExportReader(folder)
            payments = next(v for v in validate_export(reader.read) if v.export_file is PAYMENTS)
        except ExportContractError:
            return
    assert payments.rows_read == len(payments.staged) + len(payments.rejected)
    if payments.rows_read != len(records):
        assert reader.deletion_doubts, records


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=_RECORDS)
def test_a_manifest_turns_any_lost_record_into_a_contract_error(records):
    with tempfile.TemporaryDirectory() as directory:
        folder = write_export(Path(directory), marker=None, payments_csv=_payments_file(records))
        with_manifest(folder, payments=len(records))
        try:
            reader = ExportReader(folder)
            payments = next(v for v in validate_export(reader.read) if v.export_file is PAYMENTS)
        except ExportContractError:
            return
    assert payments.rows_read == len(records)


_PROOF_BREAKERS = {
    "no_marker": lambda folder: (folder / SUCCESS_MARKER).unlink(),
    "ragged_row": lambda folder: _append(folder, "P9,A1,2026-01-09\n"),
    "quoted_line_break": lambda folder: _append(folder, payment_row(9, '"two\nlines"') + "\n"),
    "missing_key": lambda folder: _append(folder, ",A1,2026-01-09,5.00,cash,none,,0,USD,true,,\n"),
}


def _append(folder: Path, text: str) -> None:
    with (folder / "payments.csv").open("a", encoding="utf-8") as handle:
        handle.write(text)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kept=st.sets(st.integers(3, 14), max_size=12), breakers=st.sets(st.sampled_from(sorted(_PROOF_BREAKERS)))
)
def test_nothing_is_marked_deleted_unless_the_export_proves_it(kept, breakers):
    """A staged payment is marked absent (what the planner deletes in full mode) only by a proving export."""
    with tempfile.TemporaryDirectory() as directory:
        engine = warehouse.sqlite_engine(str(Path(directory) / "warehouse.db"))
        staging.stage_export(
            engine, write_export(Path(directory) / "1", payments_csv=payments_csv(range(3, 15)))
        )
        second = write_export(Path(directory) / "2", payments_csv=payments_csv(sorted(kept)))
        for breaker in sorted(breakers):
            _PROOF_BREAKERS[breaker](second)
        result = staging.stage_export(engine, second)
        marked = {p for p, mark in absence_marks(engine, "payments").items() if mark}
        engine.dispose()
    # More than SHRINK_MIN_ROWS (10) of the 12 payments gone looks like a file cut short, too.
    assert result.deletion_proof == (not breakers and len(kept) >= 2), result.deletion_proof_reason
    if result.deletion_proof:
        assert marked == {f"P{n}" for n in range(3, 15)} - {f"P{n}" for n in kept}
    else:
        assert marked == set()
