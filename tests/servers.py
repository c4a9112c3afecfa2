"""The real servers the tests use: the PostgreSQL of this machine (and of CI)."""

from __future__ import annotations

import os

POSTGRES = {"host": "127.0.0.1", "port": 5432, "database": "test", "user": os.environ.get("PGUSER", "root")}
