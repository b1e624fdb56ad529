"""The one CLI: python -m service api | worker | up | migrate | seed | keys …"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
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
    if settings.api_workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several processes answer /metrics in turn: each writes its figures to files here and
        # every one of them reports the sum (prometheus-client's multi-process mode).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gigaoffice-metrics-")
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

    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port, addr=settings.host)
        logger.info("worker metrics on http://{}:{}/metrics", settings.host, settings.worker_metrics_port)

    async def main() -> None:
        worker = Worker(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    run_async(main())


def cmd_webhooks(settings: Settings) -> None:
    from service.webhooks.dispatcher import WebhookDispatcher

    async def main() -> None:
        dispatcher = WebhookDispatcher(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, dispatcher.stop)
        await dispatcher.run()

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
    from service.callers.auth import is_loopback
    from service.messaging.embedded import EmbeddedBroker

    if "allow_anonymous" not in settings.model_fields_set and is_loopback(settings.host):
        # The embedded default answers the seed's curl example as is; never on a public address.
        settings = settings.model_copy(update={"allow_anonymous": True})
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
    from service.webhooks.dispatcher import WebhookDispatcher
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
    dispatcher = WebhookDispatcher(settings)

    def shutdown() -> None:
        logger.info("shutting down")
        server.should_exit = True
        worker.stop()
        dispatcher.stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown)
    worker_task = asyncio.create_task(worker.run())
    dispatcher_task = asyncio.create_task(dispatcher.run())
    logger.info(
        "GigaOffice AI Service listening on http://{}:{} (docs at /docs)", settings.host, settings.port
    )
    try:
        await server.serve()
    finally:
        worker.stop()
        dispatcher.stop()
        await worker_task
        await dispatcher_task


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
    "webhooks": cmd_webhooks,
    "up": cmd_up,
    "migrate": cmd_migrate,
    "seed": run_seed,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("command", choices=[*sorted(COMMANDS), "keys"], help="what to run")
    args = parser.parse_args(argv[:1])
    settings = get_settings()
    configure_logging(settings)
    if args.command == "keys":  # API keys: python -m service keys create|list|revoke|update …
        from service.callers.cli import run_keys

        return run_keys(settings, argv[1:])
    if argv[1:]:
        parser.error(f"unrecognized arguments: {' '.join(argv[1:])}")
    COMMANDS[args.command](settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
