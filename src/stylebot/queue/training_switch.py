"""The training pause switch: a flag on the Redis that the front end and workers share.

It lives with the queue, not the database: workers read it and never open
the database.
"""

from __future__ import annotations

from redis.asyncio import Redis

from stylebot.queue.keys import TRAINING_PAUSED_KEY


class RedisTrainingSwitch:
    """The training pause flag, on the Redis the workers share."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def pause(self, paused_by: str) -> None:
        await self.redis.set(TRAINING_PAUSED_KEY, paused_by.encode())

    async def resume(self) -> None:
        await self.redis.delete(TRAINING_PAUSED_KEY)

    async def paused_by(self) -> str | None:
        value = await self.redis.get(TRAINING_PAUSED_KEY)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)


async def training_paused(redis: Redis) -> bool:
    """For workers: True while an operator has paused training."""
    return bool(await redis.exists(TRAINING_PAUSED_KEY))
