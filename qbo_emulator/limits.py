"""QBO's throttles (per-company request rate, batch rate, concurrency) and seeded fault injection."""

import random
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from qbo_emulator.config import EmulatorConfig


class SlidingWindow:
    def __init__(self):
        self._events: deque[float] = deque()

    def admit(self, limit: int, window_seconds: float) -> bool:
        now = time.monotonic()
        while self._events and self._events[0] <= now - window_seconds:
            self._events.popleft()
        if len(self._events) >= limit:
            return False
        self._events.append(now)
        return True


class Throttle:
    def __init__(self):
        self._requests: dict[str, SlidingWindow] = defaultdict(SlidingWindow)
        self._batches: dict[str, SlidingWindow] = defaultdict(SlidingWindow)
        self.in_flight: dict[str, int] = defaultdict(int)

    def restart_windows(self) -> None:
        """Forget the requests counted so far: new limits count from now."""
        self._requests.clear()
        self._batches.clear()

    def admit(self, config: EmulatorConfig, realm_id: str, is_batch: bool) -> bool:
        if self.in_flight[realm_id] >= config.max_concurrent_requests:
            return False
        if is_batch and not self._batches[realm_id].admit(
            config.batch_requests_per_minute, config.window_seconds
        ):
            return False
        return self._requests[realm_id].admit(config.requests_per_minute, config.window_seconds)


@dataclass(frozen=True)
class FaultDecision:
    revoke_token: bool = False
    throttle: bool = False
    server_error: int | None = None
    slow: bool = False
    drop_after_commit: bool = False


class FaultInjector:
    """Draws the same number of random values per request, so a seed fixes the fault sequence."""

    def __init__(self, config: EmulatorConfig):
        self.reseed(config)

    def reseed(self, config: EmulatorConfig) -> None:
        self._random = random.Random(config.fault_seed)

    def decide(self, config: EmulatorConfig) -> FaultDecision:
        draws = [self._random.random() for _ in range(6)]
        return FaultDecision(
            revoke_token=draws[0] < config.fault_revoke_token_rate,
            throttle=draws[1] < config.fault_throttle_rate,
            server_error=(500 if draws[5] < 0.5 else 503)
            if draws[2] < config.fault_server_error_rate
            else None,
            slow=draws[3] < config.fault_slow_rate,
            drop_after_commit=draws[4] < config.fault_drop_after_commit_rate,
        )
