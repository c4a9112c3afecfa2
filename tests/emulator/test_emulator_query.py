"""The query language as python-quickbooks emits it, and QueryResponse envelopes."""

import pytest
from quickbooks.batch import batch_create
from quickbooks.exceptions import ValidationException
from quickbooks.objects import Customer, Invoice, Item

from qbo_emulator import entities, query
from qbo_emulator.config import EmulatorConfig
from qbo_emulator.service import Emulator
from tests.emulator.builders import customer, invoice


@pytest.fixture
def customers(qb) -> dict[str, Customer]:
    created = {
        name: customer(qb, name) for name in ("O'Brien Tax", "Alpha LLC", "beta & co", "Gamma Partners")
    }
    retired = created["Gamma Partners"]
    retired.Active = False
    created["Gamma Partners"] = retired.save(qb=qb)
    return created


def test_name_with_an_apostrophe_is_found_through_filter(qb, customers):
    found = Customer.filter(DisplayName="O'Brien Tax", qb=qb)

    assert [match.Id for match in found] == [customers["O'Brien Tax"].Id]


def test_unescaped_apostrophe_is_a_4000_parse_error(qb):
    with pytest.raises(ValidationException) as raised:
        Customer.query("SELECT * FROM Customer WHERE DisplayName = 'O'Brien Tax'", qb=qb)

    assert raised.value.error_code == 4000
    assert raised.value.detail.startswith("QueryParserError: ")


def test_operators_like_in_and_comparisons(qb, customers):
    def names(where: str) -> list[str]:
        return sorted(match.DisplayName for match in Customer.where(where, qb=qb))

    assert names("DisplayName LIKE '%llc'") == ["Alpha LLC"]
    assert names("DisplayName IN ('Alpha LLC', 'beta & co')") == ["Alpha LLC", "beta & co"]
    assert names("DisplayName = 'ALPHA llc'") == ["Alpha LLC"], "values are case-insensitive"
    alpha_id = int(customers["Alpha LLC"].Id)
    assert names(f"Id > '{alpha_id}' AND Id <= '{alpha_id + 1}'") == ["beta & co"]
    assert names("MetaData.LastUpdatedTime >= '2020-01-01T00:00:00-08:00'") == [
        "Alpha LLC",
        "O'Brien Tax",
        "beta & co",
    ]


def test_inactive_rows_are_hidden_unless_active_is_filtered(qb, customers):
    assert Customer.count(qb=qb) == 3
    assert Customer.count("Active IN (true, false)", qb=qb) == 4
    assert [match.DisplayName for match in Customer.filter(Active=False, qb=qb)] == ["Gamma Partners"]


def test_order_by_and_paging(qb, customers):
    descending = Customer.query("SELECT * FROM Customer ORDER BY DisplayName DESC", qb=qb)
    assert [match.DisplayName for match in descending] == ["O'Brien Tax", "beta & co", "Alpha LLC"]

    pages = [
        Customer.filter(order_by="DisplayName", start_position=start, max_results=2, qb=qb)
        for start in (1, 3, 5)
    ]
    assert [[match.DisplayName for match in page] for page in pages] == [
        ["Alpha LLC", "beta & co"],
        ["O'Brien Tax"],
        [],
    ]


def test_query_envelopes(qb, customers):
    url = f"{qb.api_url}/company/{qb.company_id}/query"

    page = qb.query("SELECT * FROM Customer WHERE DisplayName LIKE 'Alpha%' STARTPOSITION 1 MAXRESULTS 10")
    empty = qb.query("SELECT * FROM Invoice")
    counted = qb.make_request("GET", url, params={"query": "select count(*) from customer"})

    assert set(page) == {"QueryResponse", "time"}
    assert {key: value for key, value in page["QueryResponse"].items() if key != "Customer"} == {
        "startPosition": 1,
        "maxResults": 1,
    }
    assert empty["QueryResponse"] == {}
    assert counted["QueryResponse"] == {"totalCount": 3}


def test_item_all_selects_sku_and_transactions_filter_on_references(qb, customers):
    assert [item.Name for item in Item.all(qb=qb)] == ["Services"]
    billed = invoice(qb, customers["Alpha LLC"], "10.00")
    invoice(qb, customers["beta & co"], "20.00")

    found = Invoice.where(f"CustomerRef = '{customers['Alpha LLC'].Id}' AND TotalAmt >= '10'", qb=qb)

    assert [match.Id for match in found] == [billed.Id]


def test_maxresults_is_capped_at_1000(qb):
    batch_create([_named(f"Bulk {number:04}") for number in range(1001)], qb=qb)

    first_page = Customer.query("SELECT * FROM Customer ORDERBY DisplayName MAXRESULTS 5000", qb=qb)
    last_page = Customer.query(
        "SELECT * FROM Customer ORDERBY DisplayName STARTPOSITION 1001 MAXRESULTS 1000", qb=qb
    )

    assert len(first_page) == 1000
    assert [match.DisplayName for match in last_page] == ["Bulk 1000"]


def _paged(qb, order: str, *, start: int = 1, page_size: int = 20) -> list[Customer]:
    """Every customer from `start` on, in `order`, read a page at a time as a full read-back reads."""
    found = []
    while page := Customer.query(
        f"SELECT * FROM Customer ORDERBY {order} STARTPOSITION {start} MAXRESULTS {page_size}", qb=qb
    ):
        found += page
        start += len(page)
    return found


def test_paging_returns_every_object_once_in_order(qb):
    names = [f"Paged {number:03}" for number in range(250)]
    batch_create([_named(name) for name in names], qb=qb)

    by_id = [int(match.Id) for match in _paged(qb, "Id")]
    by_name_descending = [match.DisplayName for match in _paged(qb, "DisplayName DESC")]

    assert len(by_id) == len(set(by_id)) == len(names)
    assert by_id == sorted(by_id)
    assert by_name_descending == names[::-1]


def test_writes_between_pages_are_seen_by_the_next_page(qb):
    batch_create([_named(f"Between {number:02}") for number in range(30)], qb=qb)
    first_page = _paged(qb, "Id", page_size=10)[:10]
    later = {match.DisplayName: match for match in _paged(qb, "Id", start=11)}

    renamed = later["Between 25"]
    renamed.DisplayName = "Renamed 25"
    renamed.save(qb=qb)
    retired = later["Between 20"]
    retired.Active = False
    retired.save(qb=qb)
    customer(qb, "Added")
    rest = _paged(qb, "Id", start=11, page_size=10)

    assert [match.DisplayName for match in first_page] == [f"Between {number:02}" for number in range(10)]
    assert [match.DisplayName for match in rest] == [
        *(f"Between {number:02}" for number in range(10, 20)),
        *(f"Between {number:02}" for number in range(21, 25)),
        "Renamed 25",
        *(f"Between {number:02}" for number in range(26, 30)),
        "Added",
    ]


def test_a_transaction_changes_which_customers_a_balance_selects(qb, customers):
    assert Customer.where("Balance > '0'", qb=qb) == []

    invoice(qb, customers["Alpha LLC"], "10.00")

    assert [match.DisplayName for match in Customer.where("Balance > '0'", qb=qb)] == ["Alpha LLC"]


def test_paging_selects_and_sorts_the_entity_once_until_it_changes(monkeypatch):
    emulator = Emulator(None, EmulatorConfig())
    company = next(iter(emulator.companies.values()))
    for number in range(2500):
        entities.save(company, "Customer", {"DisplayName": f"Customer {number:04}"}, {})
    selections = []
    original_select = query.select
    monkeypatch.setattr(
        query, "select", lambda *args, **kwargs: selections.append(1) or original_select(*args, **kwargs)
    )

    def page(start: int) -> list[dict]:
        answer = emulator._query(
            company, f"SELECT * FROM Customer ORDERBY Id STARTPOSITION {start} MAXRESULTS 1000"
        )
        return answer.get("Customer", [])

    pages = [page(start) for start in (1, 1001, 2001)]
    entities.save(company, "Customer", {"DisplayName": "Customer 2500"}, {})
    last_page = page(2001)

    assert [len(rows) for rows in pages] == [1000, 1000, 500]
    assert last_page[-1]["DisplayName"] == "Customer 2500"
    assert len(selections) == 2, "once for the three pages, once more after the write"
    emulator.storage.close()


def _named(name: str) -> Customer:
    new = Customer()
    new.DisplayName = name
    return new
