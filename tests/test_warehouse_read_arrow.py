"""warehouse.read_arrow: the bulk read the plan's staged firm comes through, on SQLite (the ADBC driver, in a
process of its own) and on PostgreSQL (COPY parsed by Arrow). Every value must come back as the row holds it:
what the driver or the CSV parser would guess otherwise (an all-NULL start typed as integers, "NA" read as
missing, an empty text as NULL, a line break splitting a row, a timestamp in the session's zone) is pinned."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
import sqlalchemy as sa

from taxdome_qbo.services import warehouse

ROWS = 3_000  # beyond the 1,024 rows the ADBC SQLite driver types a column by, unless told otherwise

metadata = sa.MetaData()
samples = sa.Table(
    "read_arrow_samples",
    metadata,
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("late_text", sa.String),
    sa.Column("text", sa.String),
    sa.Column("day", sa.Date),
    sa.Column("moment", sa.DateTime(timezone=True)),
    sa.Column("cents", sa.BigInteger),
    sa.Column("flag", sa.Boolean(create_constraint=False)),
    sa.Column("quantity", warehouse.EXACT_QUANTITY),
)
TEXTS = ["NA", "null", "", 'say "hi",\nthen go', "N/A", "Zoë"]


def _rows() -> list[dict]:
    return [
        {
            "n": n,
            "late_text": None if n < ROWS - 10 else f"T{n}",
            "text": TEXTS[n % len(TEXTS)] if n % 7 else None,
            "day": dt.date(2026, 1, 1) + dt.timedelta(days=n % 365) if n % 5 else None,
            # Written in UTC, as the warehouse writes timestamps; PostgreSQL's must come back in UTC too.
            "moment": dt.datetime(2026, 3, 2, 4, 30, 15, 250, tzinfo=dt.UTC) if n % 3 else None,
            "cents": None if n % 4 == 0 else n * 1_000_000_007,
            "flag": None if n % 6 == 0 else bool(n % 2),
            "quantity": None if n % 8 == 0 else "1.2500",
        }
        for n in range(ROWS)
    ]


@pytest.fixture
def sampled(warehouse_engine):
    metadata.create_all(warehouse_engine)
    with warehouse_engine.begin() as conn:
        conn.execute(samples.insert(), _rows())
    yield warehouse_engine
    metadata.drop_all(warehouse_engine)


def test_every_value_comes_back_as_stored_on_both_databases(sampled):
    tables = warehouse.read_arrow(
        sampled,
        {
            "all": sa.select(samples).order_by(samples.c.n),
            "some": sa.select(samples.c.text, samples.c.n).order_by(samples.c.n.desc()),
        },
    )

    table = tables["all"]
    assert table.schema == pa.schema(
        [
            ("n", pa.int64()),
            ("late_text", pa.string()),
            ("text", pa.string()),
            ("day", pa.string()),
            ("moment", pa.string()),
            ("cents", pa.int64()),
            ("flag", pa.bool_()),
            ("quantity", pa.string()),
        ]
    )
    got = table.to_pylist()
    for row, expected in zip(got, _rows(), strict=True):
        assert row["n"] == expected["n"]
        assert row["late_text"] == expected["late_text"]
        assert row["text"] == expected["text"]  # "NA", "null", "" and a quoted line break stay texts
        assert row["day"] == (expected["day"] and expected["day"].isoformat())
        assert row["moment"] == (expected["moment"] and "2026-03-02 04:30:15.000250")
        assert row["cents"] == expected["cents"]
        assert row["flag"] == expected["flag"]
        assert (row["quantity"] is None) == (expected["quantity"] is None)
        if row["quantity"] is not None:
            assert float(row["quantity"]) == 1.25  # the digits as the database keeps them (4 places on both)
    assert tables["some"].column_names == ["text", "n"]
    assert tables["some"].column("n").to_pylist() == list(range(ROWS))[::-1]


def test_an_empty_result_has_the_declared_columns(sampled):
    with sampled.begin() as conn:
        conn.execute(samples.delete())
    (table,) = warehouse.read_arrow(sampled, {"none": sa.select(samples)}).values()
    assert table.num_rows == 0 and table.schema.field("flag").type == pa.bool_()


def test_a_select_with_parameters_is_refused(sqlite_engine):
    with pytest.raises(ValueError, match="parameterless"):
        warehouse.read_arrow(sqlite_engine, {"some": sa.select(samples.c.n).where(samples.c.n < 10)})


def test_a_column_of_another_type_is_refused(sqlite_engine):
    with pytest.raises(TypeError, match="read_arrow reads text"):
        warehouse.read_arrow(sqlite_engine, {"x": sa.select(sa.column("x", sa.Float))})
