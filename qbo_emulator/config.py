"""Runtime settings: QBO's real limits by default, shrinkable for tests, plus fault injection."""

from dataclasses import asdict, dataclass, fields, replace

THROTTLE_BODIES = ("json", "text")


@dataclass(frozen=True)
class EmulatorConfig:
    access_token_ttl_seconds: float = 3600
    refresh_token_ttl_seconds: float = 8_726_400
    refresh_token_grace_seconds: float = 86_400
    requests_per_minute: int = 500
    batch_requests_per_minute: int = 40
    max_concurrent_requests: int = 10
    max_batch_items: int = 30
    # A "minute" of the rate limits lasts 60 * time_scale seconds, so throttling tests keep QBO's ratios.
    time_scale: float = 1.0
    throttle_body: str = "json"
    latency_seconds: float = 0.0
    fault_seed: int = 0
    fault_server_error_rate: float = 0.0
    fault_throttle_rate: float = 0.0
    fault_slow_rate: float = 0.0
    fault_slow_seconds: float = 2.0
    fault_drop_after_commit_rate: float = 0.0
    fault_revoke_token_rate: float = 0.0

    @property
    def window_seconds(self) -> float:
        return 60.0 * self.time_scale

    def updated(self, changes: dict) -> "EmulatorConfig":
        """A copy with ``changes`` applied; raises ValueError on an unknown key or a bad value."""
        known = {field.name: field.type for field in fields(self)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        converted = {}
        for key, value in changes.items():
            field_type = known[key]
            try:
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    raise TypeError
                converted[key] = field_type(value)
            except (TypeError, ValueError):
                raise ValueError(f"{key} must be a {field_type.__name__}") from None
        result = replace(self, **converted)
        result.validate()
        return result

    def validate(self) -> None:
        if self.throttle_body not in THROTTLE_BODIES:
            raise ValueError(f"throttle_body must be one of {THROTTLE_BODIES}")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        for name, value in asdict(self).items():
            if name.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")

    def as_dict(self) -> dict:
        return asdict(self)
