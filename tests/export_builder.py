"""Small, readable exports for validation and staging tests: a valid base, changed one row at a time."""

from __future__ import annotations

from pathlib import Path

from taxdome_qbo.core.export_contract import SUCCESS_MARKER
from taxdome_qbo.core.validation import ValidatedFile, validate_export
from taxdome_qbo.services.export_reader import ExportReader

BASE_EXPORT = {
    "accounts.csv": """account_id,account_name,account_type,email,created_at,updated_at,archived,qbo_sync,qbo_customer_name
A1,O'Brien & Sons,Company,ob@example.com,2025-03-01T10:00:00Z,2026-01-02T10:00:00Z,false,auto,
A2,Zoë Müller,Individual,zoe@example.com,2025-04-01T10:00:00Z,2026-01-02T10:00:00Z,false,auto,
""",
    "services.csv": """service_id,name,description,rate,rate_type,created_at,qbo_item_name
S1,Tax return,Individual return,250.00,Flat fee,2025-08-01T00:00:00Z,
S2,Bookkeeping,Monthly books,95.00,Per hour,2025-02-01T00:00:00Z,Bookkeeping
""",
    "invoices.csv": """invoice_id,invoice_number,account_id,posted_date,due_date,status,currency,tax_amount,total,description,updated_at
I1,INV-0001,A1,2026-01-05,2026-02-04,Paid,USD,22.19,464.69,January work,2026-01-05T09:00:00Z
I2,INV-0002,A2,2026-01-06,,Unpaid,USD,,250.00,,2026-01-06T09:00:00Z
""",
    "invoice_lines.csv": """invoice_id,line_no,service_id,service_name,description,rate,quantity,amount,taxable
I1,1,S1,Tax return,,250.00,1,250.00,true
I1,2,S2,Bookkeeping,Two hours and a quarter,95.00,2.25,213.75,false
I1,3,,Discount,,-21.25,1,-21.25,false
I2,1,S1,Tax return,,250.00,1,250.00,false
""",
    "payments.csv": """payment_id,account_id,payment_date,amount,method,processor,processor_txn_id,processing_fee,currency,sync_to_qbo,description,updated_at
P1,A1,2026-01-07,464.69,card,stripe,ch_1,13.78,USD,true,,2026-01-07T09:00:00Z
P2,A2,2026-01-08,100.00,cash,none,,0,USD,true,,2026-01-08T09:00:00Z
""",
    "payment_applications.csv": """payment_id,invoice_id,amount
P1,I1,464.69
P2,I2,100.00
""",
    "refunds.csv": """refund_id,payment_id,account_id,refund_date,amount,reason
R1,P1,A1,2026-01-09,50.00,Goodwill
""",
    "payouts.csv": """payout_id,payout_date,processor,gross,fee,net,payment_ids
PO1,2026-01-08,stripe,464.69,13.78,450.91,P1
""",
}


def write_export(folder: Path, *, marker: str | None = SUCCESS_MARKER, **changes: str | None) -> Path:
    """The base export with whole files replaced (`invoices_csv="..."`) or removed (`payouts_csv=None`),
    marked complete by `marker` (`_SUCCESS` by default; None: not marked, as a copy still in progress)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = dict(BASE_EXPORT)
    for key, text in changes.items():
        name = key.replace("_csv", ".csv")
        if text is None:
            files.pop(name, None)
        else:
            files[name] = text
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    if marker is not None:
        (folder / marker).write_text("", encoding="utf-8")
    return folder


def with_rows(name: str, *rows: str) -> str:
    """The base file `name` with extra data rows appended."""
    return BASE_EXPORT[name] + "".join(f"{row}\n" for row in rows)


def replace_row(name: str, old_start: str, new_row: str) -> str:
    """The base file `name` with the row starting `old_start` replaced."""
    lines = BASE_EXPORT[name].splitlines()
    replaced = [new_row if line.startswith(old_start) else line for line in lines]
    assert replaced != lines, f"no row of {name} starts with {old_start!r}"
    return "\n".join(replaced) + "\n"


def validate_folder(folder: Path) -> dict[str, ValidatedFile]:
    """Every file of the export at `folder`, validated, by file name (without .csv)."""
    return {v.export_file.name: v for v in validate_export(ExportReader(folder).read)}


def drop_row(name: str, old_start: str) -> str:
    """The base file `name` without the row starting `old_start`."""
    lines = BASE_EXPORT[name].splitlines()
    kept = [line for line in lines if not line.startswith(old_start)]
    assert kept != lines, f"no row of {name} starts with {old_start!r}"
    return "\n".join(kept) + "\n"


def stage_and_hang(spec: dict, folder: str) -> None:
    """A stage in a child process that stops for good after its first file, for a test to kill it there.

    `spec`: `{"sqlite": path}` or `{"postgres": schema}`. Kept here, away from Airflow's imports, so that
    the child starts quickly.
    """
    import time

    from servers import POSTGRES

    from taxdome_qbo.services import staging, warehouse

    if "sqlite" in spec:
        engine = warehouse.sqlite_engine(spec["sqlite"])
    else:
        engine = warehouse.postgres_engine(**POSTGRES, password=None, search_path=spec["postgres"])
    real_merge = staging._merge_file

    def merge_then_hang(*args):
        counts = real_merge(*args)
        time.sleep(600)
        return counts

    staging._merge_file = merge_then_hang
    staging.stage_export(engine, Path(folder))
