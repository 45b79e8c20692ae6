"""An event publisher that keeps what it published, for the harness and the embedded default."""

from __future__ import annotations

from booking.ports.errors import PublishFailed
from booking.ports.outbox import OutboxMessage


class MemoryEventPublisher:
    def __init__(self) -> None:
        self.published: list[OutboxMessage] = []
        self.down = False

    async def publish(self, message: OutboxMessage) -> None:
        if self.down:
            raise PublishFailed("in-memory broker switched off")
        self.published.append(message)

    async def ping(self) -> None:
        if self.down:
            raise PublishFailed("in-memory broker switched off")
