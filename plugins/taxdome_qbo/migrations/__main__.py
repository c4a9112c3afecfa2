"""`python -m taxdome_qbo.migrations [--url URL] COMMAND ...`: Alembic's command line for the warehouse.

Any Alembic command (revision, upgrade, current, history, check, ...) with this package's configuration, so
no alembic.ini. With --url it runs on that database, holding the migration lock; without, on a throw-away
SQLite database brought to the newest revision first: there `revision --autogenerate` writes what the
metadata in services/warehouse.py has beyond the newest revision, and `check` fails while it has anything.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic.config import CommandLine

from taxdome_qbo import migrations
from taxdome_qbo.services import warehouse

# Alembic's hook after writing a revision: ruff formats it, as the rest of the code.
FORMAT_NEW_REVISIONS = {
    "hooks": "ruff",
    "ruff.type": "module",
    "ruff.module": "ruff",
    "ruff.options": "format REVISION_SCRIPT_FILENAME",
}


def main(argv: Sequence[str] | None = None) -> None:
    cli = CommandLine(prog="python -m taxdome_qbo.migrations")
    cli.parser.add_argument(
        "--url",
        help="the warehouse database (a SQLAlchemy URL); default: a throw-away SQLite database at the newest "
        "revision",
    )
    options = cli.parser.parse_args(argv)
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    with tempfile.TemporaryDirectory() as scratch:
        if options.url:
            engine = sa.create_engine(options.url)
        else:
            engine = warehouse.sqlite_engine(str(Path(scratch) / "warehouse.db"))
            migrations.upgrade(engine)
        logging.basicConfig(format="%(message)s")
        logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)  # what it runs, on what
        try:
            with migrations.migrating(engine) as config:
                config.cmd_opts = options
                for option, value in FORMAT_NEW_REVISIONS.items():
                    config.set_section_option("post_write_hooks", option, value)
                cli.run_cmd(config, options)
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
