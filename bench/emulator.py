"""Benchmark: single-entity creates per second that one emulator process serves on loopback.

Drives the emulator through python-quickbooks (one client per thread) and prints creates/s. The issue's bar is
20 x QBO's per-company limit of 500 requests/min, i.e. at least 170 creates/s, so that the emulator is never
what a load benchmark measures.

    python bench/emulator.py [--seconds 5] [--threads 4] [--db state.sqlite]
"""

import argparse
import threading
import time
import uuid

from quickbooks.objects import Customer

from qbo_emulator.testing import running_emulator

REQUIRED_CREATES_PER_SECOND = 170
# The benchmark measures the server, so QBO's throttles (which would cap it at 8.3 requests/s) are lifted.
UNTHROTTLED = {"requests_per_minute": 10**9, "max_concurrent_requests": 10**6}


def run(seconds: float, threads: int, db_path: str | None = None) -> float:
    """Creates customers from ``threads`` clients for ``seconds``; returns creates per second."""
    with running_emulator(db_path, **UNTHROTTLED) as emulator:
        company = emulator.companies()[0]
        clients = [emulator.quickbooks(company) for _ in range(threads)]
        counts = [0] * threads
        failures: list[BaseException] = []
        run_id = uuid.uuid4().hex[:8]
        deadline = time.perf_counter() + seconds

        def create_customers(index: int) -> None:
            try:
                while time.perf_counter() < deadline:
                    customer = Customer()
                    customer.DisplayName = f"Bench {run_id} {index}-{counts[index]}"
                    customer.save(qb=clients[index])
                    counts[index] += 1
            except BaseException as error:
                failures.append(error)

        started = time.perf_counter()
        workers = [threading.Thread(target=create_customers, args=(index,)) for index in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
        if failures:
            raise RuntimeError(f"{len(failures)} benchmark client(s) failed") from failures[0]
        return sum(counts) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--db", default=None, help="SQLite file for the emulator (default: in memory)")
    arguments = parser.parse_args()
    rate = run(arguments.seconds, arguments.threads, arguments.db)
    verdict = (
        "OK" if rate >= REQUIRED_CREATES_PER_SECOND else f"BELOW the {REQUIRED_CREATES_PER_SECOND}/s bar"
    )
    print(f"qbo_emulator: {rate:.0f} customer creates/s through python-quickbooks ({verdict})")
    if rate < REQUIRED_CREATES_PER_SECOND:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
