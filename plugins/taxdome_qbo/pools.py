"""The Airflow pools the project's tasks run in, declared once: the operators name them, the plugin's
listener creates them where they are missing (a task in a missing pool stays `scheduled` forever)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int  # what a new pool gets; an existing pool keeps the slots its operators gave it
    description: str


QBO_API = PoolSpec(
    name="qbo_api",
    slots=1,
    description="QuickBooks Online loads (the rate governor shares each company's limits); "
    "created by the taxdome_qbo plugin, more slots let loads of different companies run at once",
)

PROJECT_POOLS = (QBO_API,)
