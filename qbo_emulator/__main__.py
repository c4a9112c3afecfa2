"""Serves the emulator.

``python -m qbo_emulator --host 127.0.0.1 --port 8765 --db state.sqlite [--config '{"time_scale": 0.1}']``
"""

import argparse
import json
import sys

import uvicorn

from qbo_emulator.app import create_app
from qbo_emulator.config import EmulatorConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m qbo_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--db", default=None, help="SQLite file holding the state (default: in memory)")
    parser.add_argument(
        "--config", default="{}", help="JSON object of settings, as PUT /_emulator/config takes"
    )
    arguments = parser.parse_args(argv)
    try:
        config = EmulatorConfig().updated(json.loads(arguments.config))
    except (ValueError, AttributeError) as error:
        sys.exit(f"invalid --config: {error}")
    uvicorn.run(
        create_app(arguments.db, config),
        host=arguments.host,
        port=arguments.port,
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
