"""The query language as python-quickbooks emits it, and QueryResponse envelopes."""

import pytest
from quickbooks.batch import batch_create
from quickbooks.exceptions import ValidationException
from quickbooks.objects import Customer, Invoice, Item

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


def _named(name: str) -> Customer:
    new = Customer()
    new.DisplayName = name
    return new
