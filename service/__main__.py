"""The one CLI: python -m service api | worker | up | migrate | seed | batch … | request …"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Generator

import uvicorn
from loguru import logger

from service.config import Settings, get_settings
from service.logging import configure_logging


def cmd_migrate(settings: Settings) -> None:
    from service.db.migrate import upgrade_to_head

    upgrade_to_head(settings.database_url)
    logger.info("database migrated to the latest schema")


def cmd_api(settings: Settings) -> None:
    uvicorn.run(
        "service.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.api_workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        loop="uvloop",
        http="httptools",
        proxy_headers=True,
    )


def cmd_worker(settings: Settings) -> None:
    from workers.main import Worker

    async def main() -> None:
        worker = Worker(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    run_async(main())


def run_async(coro: object) -> None:
    import uvloop

    uvloop.run(coro)  # type: ignore[arg-type]


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: `up` stops the API, worker and broker together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def cmd_up(settings: Settings) -> None:
    """Everything in one process: (embedded broker) + migrate + seed + API + worker."""
    from service.messaging.embedded import EmbeddedBroker

    broker = None
    if not settings.kafka_bootstrap_servers:
        broker = EmbeddedBroker()
        broker.start()
        settings = settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers})
    try:
        cmd_migrate(settings)
        run_seed(settings)
        run_async(_serve_all(settings))
    finally:
        if broker is not None:
            broker.stop()
        logger.info("stopped")


async def _serve_all(settings: Settings) -> None:
    from service.app import create_app
    from workers.main import Worker

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
    )
    server = _EmbeddedServer(config)
    worker = Worker(settings)

    def shutdown() -> None:
        logger.info("shutting down")
        server.should_exit = True
        worker.stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown)
    worker_task = asyncio.create_task(worker.run())
    logger.info(
        "GigaOffice AI Service listening on http://{}:{} (docs at /docs)", settings.host, settings.port
    )
    try:
        await server.serve()
    finally:
        worker.stop()
        await worker_task


def run_seed(settings: Settings) -> None:
    """Load resources/ into the database (categories, templates, presets) where that exists."""
    try:
        from service.seeding import seed_database
    except ImportError:
        return
    asyncio.run(seed_database(settings))


COMMANDS = {
    "api": cmd_api,
    "worker": cmd_worker,
    "up": cmd_up,
    "migrate": cmd_migrate,
    "seed": run_seed,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("batch", "request"):  # script commands: a client of a running service
        from service.cli import main as client_main

        return client_main(argv)
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS), help="what to run")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    COMMANDS[args.command](settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
