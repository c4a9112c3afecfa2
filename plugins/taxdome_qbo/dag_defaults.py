"""What the project's DAGs share: their owner, and how a failed task is retried."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

# A deployment's environment may shorten (or lengthen) the wait before a retry; the Celery test tier shortens
# it so that a killed worker's task is retried within seconds.
RETRY_DELAY_SETTING = "TAXDOME_QBO_RETRY_DELAY_SECONDS"
DEFAULT_RETRY_DELAY_SECONDS = 60.0


def default_args(**overrides: Any) -> dict[str, Any]:
    """Owned by the data team; a failed task is retried twice, after the retry delay."""
    delay = float(os.environ.get(RETRY_DELAY_SETTING) or DEFAULT_RETRY_DELAY_SECONDS)
    return {"owner": "data-team", "retries": 2, "retry_delay": timedelta(seconds=delay)} | overrides
