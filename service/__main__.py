"""The one CLI: python -m service api | worker | up | migrate | seed | keys … | batch … | request …"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import uvicorn
from loguru import logger
from pydantic import ValidationError
from pydantic_settings import SettingsError

from service.cli import register as register_client_commands
from service.cli import run as run_client_command
from service.config import Settings, get_settings, settings_problems
from service.errors import ConfigurationError
from service.keys_cli import register as register_keys
from service.lifecycle_cli import register as register_lifecycle
from service.logging import configure_logging

if TYPE_CHECKING:
    from service.messaging.embedded import EmbeddedBroker


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
        # Long-polls and slow clients may not hold a SIGTERM up beyond the grace period.
        timeout_graceful_shutdown=max(1, int(settings.worker_shutdown_grace_seconds)),
    )


def cmd_worker(settings: Settings) -> None:
    from workers.main import Worker

    if settings.worker_metrics_port:
        from service.monitoring import serve_worker_metrics

        host, port = settings.worker_metrics_host, settings.worker_metrics_port
        serve_worker_metrics(port, host)
        logger.info("worker metrics on http://{}:{}/metrics", host, port)

    async def main() -> None:
        worker = Worker(settings)
        running = asyncio.create_task(worker.run())
        stop_requested = _stop_on_signals(worker.stop, running)
        await _bounded_wait(running, stop_requested, _stop_budget(settings))

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
            for task in asyncio.all_tasks():
                frames = task.get_stack(limit=1)
                where = f"{frames[0].f_code.co_filename}:{frames[0].f_lineno}" if frames else "?"
                logger.warning("still running: {} at {}", task.get_name(), where)
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
    from service.messaging.kafka import ensure_topics
    from service.webhooks.dispatcher import WebhookDispatcher
    from workers.main import Worker

    worker = Worker(settings)
    app = create_app(settings, readiness_checks={"worker": worker.readiness})
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
    supervisor = asyncio.create_task(_supervise_broker(broker)) if broker is not None else None
    dispatcher = WebhookDispatcher(settings)

    def stop() -> None:
        server.should_exit = True
        worker.stop()
        dispatcher.stop()

    async def serve() -> None:
        # Once, here: the API, the worker and the dispatcher starting side by side would each find
        # the topics missing, create them and say so.
        await ensure_topics(settings)
        worker_task = asyncio.create_task(worker.run())
        dispatcher_task = asyncio.create_task(dispatcher.run())
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
            dispatcher.stop()
            await worker_task
            await dispatcher_task

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


# name → (what it does, the function). Each command gets its own --help.
COMMANDS = {
    "api": ("Run the HTTP API (uvicorn; API_WORKERS processes on HOST:PORT).", cmd_api),
    "worker": ("Run a worker: consume requests from Kafka and answer them.", cmd_worker),
    "webhooks": (
        "Run a webhook dispatcher: deliver signed webhooks from the completion events.",
        cmd_webhooks,
    ),
    "up": (
        "Everything in one process: (embedded broker unless KAFKA_BOOTSTRAP_SERVERS) + migrate + "
        "seed + API + worker.",
        cmd_up,
    ),
    "migrate": ("Upgrade the database schema to the latest revision (Alembic).", cmd_migrate),
    "seed": ("Load resources/ (categories, prompt templates, presets) into the database.", run_seed),
}

_SETTINGS_NOTE = (
    "Settings come from the environment and .env (see .env.example); the options below override them."
)
# Options of the serving commands, each standing for the setting (environment variable) of its name.
_SETTING_OPTIONS = ("log_level", "host", "port", "api_workers", "worker_concurrency")


def build_parser() -> argparse.ArgumentParser:
    """The one parser. Every command is registered here, by the module that implements it."""
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (summary, run) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=f"{summary} {_SETTINGS_NOTE}")
        sub.set_defaults(serve=run)
        sub.add_argument("--log-level", help="LOG_LEVEL for this run (any case: debug, INFO, ...)")
        if name in ("api", "up"):
            sub.add_argument("--host", help="HOST to listen on")
            sub.add_argument("--port", type=int, help="PORT to listen on")
        if name == "api":
            sub.add_argument("--workers", dest="api_workers", type=int, help="API_WORKERS processes")
        if name in ("worker", "up"):
            sub.add_argument("--concurrency", dest="worker_concurrency", type=int, help="WORKER_CONCURRENCY")
    register_keys(commands)  # server side: needs the settings (the database)
    register_lifecycle(commands)  # purge, export, erase (server side too)
    register_client_commands(commands)  # client side: a URL and a key, never the server's settings
    return parser


def load_settings() -> Settings | None:
    """The settings, or None after printing one clear line per problem (a traceback would bury the
    variable to fix)."""
    try:
        return get_settings()
    except (ValidationError, SettingsError) as exc:
        for line in settings_problems(exc):
            print(f"configuration error: {line}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if getattr(args, "client_command", None) is not None:
        return run_client_command(args)
    # Options become the environment variables they stand for, so API worker processes (which read
    # their settings afresh) see them too, validated like any other value.
    for key in _SETTING_OPTIONS:
        value = getattr(args, key, None)
        if value is not None:
            os.environ[key.upper()] = str(value)
    get_settings.cache_clear()
    settings = load_settings()
    if settings is None:
        return 2
    configure_logging(settings)
    if getattr(args, "server_command", None) is not None:
        code: int = args.server_command(settings, args)
        return code
    try:
        if args.command in SERVING_COMMANDS:
            check_llm_configuration(settings)
        args.serve(settings)
    except ConfigurationError as exc:
        # A setting that cannot work is the operator's to fix: one clear line, not a traceback.
        logger.error("configuration error: {}", exc.message)
        return 2
    return 0


SERVING_COMMANDS = {"api", "worker", "up"}


def check_llm_configuration(settings: Settings) -> None:
    """Open and close the configured LLM backends once (no network I/O): a missing certificate,
    a wrong key password or absent credentials stop start-up here, before any server or child
    process starts and reports the same problem again."""
    from service.llm.registry import build_backend

    async def check() -> None:
        backend = build_backend(settings)
        await backend.start()
        await backend.close()

    asyncio.run(check())


if __name__ == "__main__":
    sys.exit(main())
