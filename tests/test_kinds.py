"""The registry of QuickBooks kinds (core/kinds.py): each kind declared once and completely, and the orders,
tables and lookups the planner, the loader and the read-back derive from it."""

from __future__ import annotations

import json
import re

import pytest
from planning_builder import no_state, staged_firm

from taxdome_qbo.core import kinds, load_rules, qbo_faults
from taxdome_qbo.core.kinds import CATEGORIES, ENTITIES, KINDS, Kind, QboEntity
from taxdome_qbo.core.planner import build_plan
from taxdome_qbo.core.settings import FirmSettings
from taxdome_qbo.core.vocabulary import StagedFirm
from taxdome_qbo.demo.planning import demo_company
from taxdome_qbo.services import warehouse

EVERY_KIND = (
    "account",
    "service",
    "invoice",
    "payment",
    "credit_memo",
    "credit_application",
    "fee",
    "refund",
)


def test_a_name_declared_twice_is_refused():
    with pytest.raises(ValueError, match="fee is declared twice"):
        kinds.declare(Kind("fee", "Purchase", "expenses"), Kind("fee", "Purchase", "expenses"))
    with pytest.raises(ValueError, match="Item is declared twice"):
        kinds.declare(QboEntity("Item", "items?itemId="), QboEntity("Item", "items?itemId="))


def test_every_kind_is_declared_once_in_write_order():
    assert tuple(KINDS) == EVERY_KIND
    assert kinds.WRITE_ORDER == EVERY_KIND


def test_the_execution_phases_keep_their_numbers():
    """A phase's number is part of every operation's seq: plans recorded before must keep their order."""
    assert kinds.DELETE_ORDER == ("refund", "fee", "credit_application", "payment", "credit_memo")
    assert kinds.PHASES[:5] == tuple((kind, True) for kind in kinds.DELETE_ORDER)
    assert kinds.PHASES[5:] == tuple((kind, False) for kind in EVERY_KIND)


def test_every_kind_has_a_category_an_entity_with_an_app_path_and_a_status_kind():
    assert {kind.category for kind in KINDS.values()} == set(CATEGORIES)
    for kind in KINDS.values():
        assert kind.entity in ENTITIES, kind.name
        assert ENTITIES[kind.entity].app_path.endswith("="), kind.name
        assert kind.status_kind is None or KINDS[kind.status_kind].own_status_row, kind.name
        assert qbo_faults.category_of(kind.name) == kind.category
    assert load_rules.status_key("credit_memo", "P1") == ("payment", "P1")
    assert load_rules.status_key("fee", "P1") == ("fee", "P1")


def test_the_staged_tables_are_the_planners_input_with_their_ids():
    assert tuple(kinds.READ_COLUMNS) == tuple(StagedFirm.__dataclass_fields__)
    for kind in KINDS.values():
        if kind.id_column is not None:
            assert kind.id_column == kind.staged[0].read_columns[0], kind.name
        else:
            assert not kind.staged, kind.name
    assert {name for name, table in kinds.STAGED_TABLES.items() if table.chunked} == {
        "invoices",
        "invoice_lines",
    }


def test_every_entity_is_read_back_after_what_moves_its_balance():
    read = [entity.name for entity in kinds.READ_BACK]
    assert read == ["Payment", "Invoice", "CreditMemo", "Purchase", "RefundReceipt", "Customer"]
    for position, entity in enumerate(kinds.READ_BACK):
        assert set(entity.balance_sources) <= set(read[:position]), entity.name
    assert {name: table.name for name, table in warehouse.QBO_COPIES.items()} == {
        entity.name: entity.copy_table for entity in kinds.READ_BACK
    }


@pytest.mark.parametrize(
    ("entity", "payload", "conditions"),
    [
        ("Customer", {"DisplayName": "Acme", "Notes": "taxdome:account:A1"}, [("DisplayName", "Acme")]),
        ("Item", {"Name": "Bookkeeping"}, [("Name", "Bookkeeping")]),
        ("Invoice", {"DocNumber": "1001", "TxnDate": "2026-01-02"}, [("DocNumber", "1001")]),
        (
            "Invoice",
            {"DocNumber": "", "TxnDate": "2026-01-02", "CustomerRef": {"value": "7"}},
            [("TxnDate", "2026-01-02"), ("CustomerRef", "7")],
        ),
        ("Purchase", {"TxnDate": "2026-01-02"}, [("TxnDate", "2026-01-02")]),
    ],
)
def test_an_object_is_found_again_by_its_natural_key_else_by_date_and_customer(entity, payload, conditions):
    assert load_rules.lookup_conditions(entity, payload) == conditions


def test_markers_sit_where_each_entity_keeps_notes():
    assert load_rules.marker_field("Customer") == "Notes"
    assert load_rules.marker_field("Item") is None
    assert load_rules.marker_field("RefundReceipt") == "PrivateNote"
    assert load_rules.is_same_object("Item", {"Name": "Tax"}, {"Name": "Tax", "PrivateNote": "other"})


def test_every_planned_reference_names_a_kind_written_in_an_earlier_phase(tmp_path):
    """The loader sends a phase only after the phases before it: what a payload refers to must exist by then."""
    plan = build_plan(
        staged_firm(tmp_path / "export"),
        FirmSettings(),
        demo_company(items=[("40", "Bookkeeping", True)]),
        no_state(),
    )
    phase = {kind: position for position, (kind, _) in enumerate(kinds.PHASES[5:])}
    checked = set()
    for operation in plan.operations.itertuples(index=False):
        assert operation.qbo_entity == KINDS[operation.taxdome_kind].entity
        for reference in re.findall(r'"@([a-z_]+):', json.dumps(json.loads(operation.payload))):
            assert phase[reference] < phase[operation.taxdome_kind], (operation.taxdome_kind, reference)
            checked.add((operation.taxdome_kind, reference))
    assert ("invoice", "account") in checked and ("invoice", "service") in checked
