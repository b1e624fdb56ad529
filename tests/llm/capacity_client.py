"""One "worker" of the shared-capacity test, run as its own process: builds the backend from the
environment (as a worker does) with its own Redis client, says "ready", waits for a line on stdin
(so the test can start every process at the same moment), sends CAPACITY_CLIENT_CALLS chats at
once, and prints a JSON summary."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from service.config import Settings
from service.llm.base import ChatRequest, LLMError
from service.llm.registry import build_backend
from service.redis_client import open_redis


async def main() -> None:
    settings = Settings(_env_file=None)
    redis = open_redis(settings)
    backend = build_backend(settings, redis)
    await backend.start()
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        calls = int(os.environ["CAPACITY_CLIENT_CALLS"])
        results = await asyncio.gather(
            *(backend.chat(ChatRequest(system="s", user=f"call {i}")) for i in range(calls)),
            return_exceptions=True,
        )
    finally:
        await backend.close()
        if redis is not None:
            await redis.aclose()
    answered = [r for r in results if not isinstance(r, BaseException)]
    failed = [r.code if isinstance(r, LLMError) else type(r).__name__ for r in results if r not in answered]
    print(json.dumps({"answered": len(answered), "failed": failed}))


if __name__ == "__main__":
    asyncio.run(main())
