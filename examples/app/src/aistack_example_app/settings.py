"""The service's settings, read once from the environment."""

import os
from collections.abc import Mapping
from dataclasses import dataclass


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {raw}")
    return value


@dataclass(frozen=True)
class Settings:
    """What the service reads from its environment (see README.md for each variable)."""

    release: str | None = None
    redis_url: str | None = None
    opensearch_url: str | None = None
    mongodb_url: str | None = None
    ca_file: str | None = None
    ready_timeout: float = 1.0
    fault_error_ratio: float = 0.0
    fault_latency_ms: float = 0.0
    fault_seed: int | None = None
    stream_max_seconds: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        seed = env.get("APP_FAULT_SEED", "").strip()
        return cls(
            release=env.get("APP_RELEASE_ID") or None,
            redis_url=env.get("APP_REDIS_URL") or None,
            opensearch_url=env.get("APP_OPENSEARCH_URL") or None,
            mongodb_url=env.get("APP_MONGODB_URL") or None,
            ca_file=env.get("APP_TLS_CA_FILE") or None,
            ready_timeout=_float(env, "APP_READY_TIMEOUT", 1.0, 0.01, 60),
            fault_error_ratio=_float(env, "APP_FAULT_ERROR_RATIO", 0.0, 0, 1),
            fault_latency_ms=_float(env, "APP_FAULT_LATENCY_MS", 0.0, 0, 600_000),
            fault_seed=int(seed) if seed else None,
            stream_max_seconds=_float(env, "APP_STREAM_MAX_SECONDS", 30.0, 0, 86_400),
        )
