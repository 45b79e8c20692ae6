"""Clock and id generator backed by the operating system."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime

# 2026-01-01T00:00:00Z in milliseconds: ids stay small for decades.
_EPOCH_MS = 1_767_225_600_000
# 41 bits of milliseconds (69 years) + 6 + 6 = 53 bits: ids stay exact as JSON numbers in
# JavaScript clients (Number.MAX_SAFE_INTEGER is 2**53 - 1), and fit a Java Long.
_NODE_BITS = 6
_SEQ_BITS = 6


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SnowflakeIds:
    """Time-ordered 53-bit ids: milliseconds | node | sequence.

    The node is drawn at random per process, so replicas need no coordination; the database's
    primary key still catches the rare collision and the caller draws again."""

    def __init__(self, node: int | None = None) -> None:
        self._node = secrets.randbelow(1 << _NODE_BITS) if node is None else node
        self._last_ms = -1
        self._seq = 0
        self._lock = threading.Lock()

    def next_id(self) -> int:
        with self._lock:
            now_ms = max(int(time.time() * 1000) - _EPOCH_MS, self._last_ms)
            if now_ms == self._last_ms:
                self._seq = (self._seq + 1) & ((1 << _SEQ_BITS) - 1)
                if self._seq == 0:
                    now_ms += 1
            else:
                self._seq = 0
            self._last_ms = now_ms
            return (now_ms << (_NODE_BITS + _SEQ_BITS)) | (self._node << _SEQ_BITS) | self._seq
