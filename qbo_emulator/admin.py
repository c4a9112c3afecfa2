"""Command-line access to a running emulator's admin API, for `make demo` and people.

``python -m qbo_emulator.admin connection URL`` prints the Airflow connection (JSON) that points
`quickbooks_default` at the emulator's first company (its refresh token only seeds the warehouse's store).
``python -m qbo_emulator.admin requests URL`` prints how many requests of each operation it has served;
``python -m qbo_emulator.admin clear-requests URL`` empties that log (e.g. after setting a company up).
"""

import argparse
import json
import sys

import httpx


def airflow_connection(base_url: str, company: dict, rate_window_seconds: float = 60.0) -> dict:
    """The connection of ``company``; an emulator whose minute is time-scaled tells the loader's rate
    governor how long its minute lasts (`rate_window_seconds`)."""
    extra = {
        "realm_id": company["realm_id"],
        "environment": base_url,
        "refresh_token": company["refresh_token"],
    }
    if rate_window_seconds != 60.0:
        extra["rate_window_seconds"] = rate_window_seconds
    return {
        "conn_type": "quickbooks",
        "login": company["client_id"],
        "password": company["client_secret"],
        "extra": extra,
    }


def _admin(base_url: str, path: str) -> dict | list:
    return httpx.get(f"{base_url}/_emulator/{path}", timeout=30).raise_for_status().json()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m qbo_emulator.admin", description=__doc__)
    parser.add_argument("command", choices=["connection", "requests", "clear-requests"])
    parser.add_argument("base_url")
    arguments = parser.parse_args(argv)
    base_url = arguments.base_url.rstrip("/")
    if arguments.command == "connection":
        company = _admin(base_url, "companies")[0]
        window = 60.0 * _admin(base_url, "config")["time_scale"]
        sys.stdout.write(json.dumps(airflow_connection(base_url, company, window)) + "\n")
        return
    if arguments.command == "clear-requests":
        httpx.delete(f"{base_url}/_emulator/requests", timeout=30).raise_for_status()
        return
    log = _admin(base_url, "requests")
    counts = ", ".join(
        f"{operation} {count}" for operation, count in sorted(log["counts_by_operation"].items())
    )
    sys.stdout.write(f"QBO emulator served {log['total']} requests: {counts}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
