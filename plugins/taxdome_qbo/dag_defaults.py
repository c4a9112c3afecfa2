"""What the project's DAGs share: their owner, how a failed task is retried, and who hears of its failure."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from taxdome_qbo import alerts

# A deployment's environment may shorten (or lengthen) the wait before a retry; the Celery test tier shortens
# it so that a killed worker's task is retried within seconds.
RETRY_DELAY_SETTING = "TAXDOME_QBO_RETRY_DELAY_SECONDS"
DEFAULT_RETRY_DELAY_SECONDS = 60.0


def default_args(**overrides: Any) -> dict[str, Any]:
    """Owned by the data team; a failed task is retried twice, after the retry delay, then alerted."""
    delay = float(os.environ.get(RETRY_DELAY_SETTING) or DEFAULT_RETRY_DELAY_SECONDS)
    return {
        "owner": "data-team",
        "retries": 2,
        "retry_delay": timedelta(seconds=delay),
        "on_failure_callback": alerts.task_failed,
    } | overrides
