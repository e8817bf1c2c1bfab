"""The deterministic "model" and the fault injection used by canary tests."""

import asyncio
import hashlib
import random


def score(text: str) -> float:
    """A stable score in [0, 1): the same text always gets the same score, on every host."""
    digest = hashlib.sha256(text.encode()).digest()
    return round(int.from_bytes(digest[:8], "big") / 2**64, 6)


class Faults:
    """Added latency and a ratio of failed requests, as configured by the environment."""

    def __init__(self, error_ratio: float = 0.0, latency_ms: float = 0.0, seed: int | None = None) -> None:
        self.error_ratio = error_ratio
        self.latency_ms = latency_ms
        self._rng = random.Random(seed)  # noqa: S311  (fault injection, not cryptography)

    async def strike(self) -> bool:
        """Wait the added latency, then tell whether this request is to fail."""
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        return self.error_ratio > 0 and self._rng.random() < self.error_ratio
