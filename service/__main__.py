"""The one CLI: python -m service api | worker | up | migrate | seed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import uvicorn
from loguru import logger

from service.config import Settings, get_settings
from service.logging import configure_logging

if TYPE_CHECKING:
    from service.messaging.embedded import EmbeddedBroker


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
        # Long-polls and slow clients may not hold a SIGTERM up beyond the grace period.
        timeout_graceful_shutdown=max(1, int(settings.worker_shutdown_grace_seconds)),
    )


def cmd_worker(settings: Settings) -> None:
    from workers.main import Worker

    async def main() -> None:
        worker = Worker(settings)
        running = asyncio.create_task(worker.run())
        stop_requested = _stop_on_signals(worker.stop, running)
        await _bounded_wait(running, stop_requested, _stop_budget(settings))

    run_async(main())


def run_async(coro: object) -> None:
    import uvloop

    uvloop.run(coro)  # type: ignore[arg-type]


def _stop_budget(settings: Settings) -> float:
    """How long a stop may take: in-flight work's grace, then closing clients against a broker
    that may be gone (each bounded by the request timeout), with a margin."""
    return settings.worker_shutdown_grace_seconds + 3 * settings.kafka_request_timeout_ms / 1000 + 5


def _stop_on_signals(stop: Callable[[], None], running: asyncio.Task[None]) -> asyncio.Event:
    """First SIGTERM/SIGINT: stop gracefully. A second one: stop now (cancel everything).
    Returns the event set by the first signal."""
    stop_requested = asyncio.Event()

    def on_signal() -> None:
        if not stop_requested.is_set():
            stop_requested.set()
            logger.info("stopping (again to stop at once)")
            stop()
        else:
            logger.warning("stopping at once")
            running.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    return stop_requested


async def _bounded_wait(running: asyncio.Task[None], stop_requested: asyncio.Event, budget: float) -> None:
    """Wait for `running`; once a stop was asked for, give it at most `budget` seconds more."""
    asked = asyncio.create_task(stop_requested.wait())
    await asyncio.wait({running, asked}, return_when=asyncio.FIRST_COMPLETED)
    asked.cancel()
    if not running.done():
        await asyncio.wait({running}, timeout=budget)
        if not running.done():
            logger.error("not stopped within {:.0f} s; cancelling what is left", budget)
            running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running


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
        run_async(_serve_all(settings, broker))
    finally:
        if broker is not None:
            broker.stop()
        logger.info("stopped")


async def _supervise_broker(broker: EmbeddedBroker) -> None:
    """Restart the embedded broker on its port if it dies. It comes back empty; the broker monitors
    of the API and worker notice, re-create the topics, and the worker re-publishes what was queued."""
    while True:
        await asyncio.sleep(1.0)
        code = broker.exit_code()
        if code is None:
            continue
        logger.error("embedded broker exited (code {}); restarting it on port {}", code, broker.port)
        try:
            await broker.astart()
        except Exception as exc:
            logger.error("embedded broker did not restart ({}); trying again", exc)


async def _serve_all(settings: Settings, broker: EmbeddedBroker | None = None) -> None:
    from service.app import create_app
    from workers.main import Worker

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(settings.worker_shutdown_grace_seconds)),
    )
    server = _EmbeddedServer(config)
    worker = Worker(settings)
    app.state.readiness_checks = {"worker": worker.readiness}
    supervisor = asyncio.create_task(_supervise_broker(broker)) if broker is not None else None

    def stop() -> None:
        server.should_exit = True
        worker.stop()

    async def serve() -> None:
        worker_task = asyncio.create_task(worker.run())
        try:
            # Join the group first, so the first request does not wait for it.
            if await worker.wait_ready(timeout=60):
                logger.info("worker ready")
            else:
                logger.warning("worker not ready yet; serving anyway (readiness says so)")
            logger.info(
                "GigaOffice AI Service listening on http://{}:{} (docs at /docs)",
                settings.host,
                settings.port,
            )
            await server.serve()
        finally:
            worker.stop()
            await worker_task

    running = asyncio.create_task(serve())
    stop_requested = _stop_on_signals(stop, running)
    try:
        await _bounded_wait(running, stop_requested, _stop_budget(settings))
    finally:
        if supervisor is not None:
            supervisor.cancel()


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
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS), help="what to run")
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    COMMANDS[args.command](settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
