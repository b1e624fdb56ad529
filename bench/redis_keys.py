"""Redis memory per rate-limit key, measured with the service's own limiter on a real Redis.

    python -m bench.redis_keys [--keys 10000] [--redis redis://127.0.0.1:6379/15]

Hits the per-minute limiter (service.callers.ratelimit, the `limits` library's fixed window) once
for each of N distinct callers, the way N active API keys in one minute would, then reads
`MEMORY USAGE` of every key it made and `used_memory` before and after. Prints one JSON object.
Its keys have a prefix of their own and are deleted at the end; other keys are not touched.
The figure sizes Redis for the capacity model (docs/operations.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import uuid

from service.callers.model import Caller, Limits
from service.callers.ratelimit import RequestRateLimiter
from service.config import Settings
from service.redis_client import open_redis


async def measure(redis_url: str, count: int) -> dict[str, object]:
    prefix = f"bench-ratelimit-{uuid.uuid4().hex[:8]}"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, redis_url=redis_url, rate_limit_key_prefix=prefix, rate_limit_requests_per_minute=600
    )
    redis = open_redis(settings)
    assert redis is not None
    try:
        limiter = RequestRateLimiter(settings, redis)
        assert limiter.shared, "the limiter did not use Redis"
        before = int((await redis.info("memory"))["used_memory"])
        for start in range(0, count, 50):
            callers = [
                Caller(
                    owner_id=f"k{n}",
                    key_id=f"k{n}",
                    role="user",
                    limits=Limits(),
                    rate_key=f"key:{uuid.uuid4().hex[:16]}",
                )
                for n in range(start, min(count, start + 50))
            ]
            await asyncio.gather(*(limiter.hit(caller) for caller in callers))
        after = int((await redis.info("memory"))["used_memory"])
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
        sizes = [int(await redis.memory_usage(key) or 0) for key in keys]
        sample = (await redis.type(keys[0])).decode() if keys else ""
        return {
            "callers": count,
            "keys": len(keys),
            "key_example": keys[0].decode() if keys else None,
            "key_type": sample,
            "ttl_seconds": await redis.ttl(keys[0]) if keys else None,
            "memory_usage_bytes": {
                "mean": round(statistics.fmean(sizes), 1) if sizes else 0,
                "min": min(sizes, default=0),
                "max": max(sizes, default=0),
            },
            "used_memory_delta_bytes_per_key": round((after - before) / max(1, len(keys)), 1),
        }
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.redis, args.keys)), indent=2))


if __name__ == "__main__":
    main()
