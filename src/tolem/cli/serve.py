"""`tolem serve`: the HTTP service, in one process or several sharing the port."""

import asyncio
import multiprocessing
import os
import shutil
import signal
import tempfile

import structlog

from tolem.cli.common import Commands, Parser, connected
from tolem.db.ledger import other_currencies
from tolem.log import configure_logging, write_held_lines
from tolem.settings import Settings

_log = structlog.get_logger("tolem.serve")


def _serve_one(settings: Settings, reuse_port: bool) -> None:
    from aiohttp import web  # noqa: PLC0415 - keeps the other commands' start-up light

    from tolem.app import create_app  # noqa: PLC0415

    configure_logging(
        json=None if settings.log_format is None else settings.log_format == "json",
        level=settings.log_level,
    )
    loop: asyncio.AbstractEventLoop | None = None
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = None
    try:
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            access_log=None,
            reuse_port=reuse_port,
            print=None,
            loop=loop,
        )
    finally:
        write_held_lines()


def serve(settings: Settings) -> int:
    """Runs the service until signalled; refuses to start while migrations are pending."""
    asyncio.run(_check_serve(settings))
    if settings.workers == 1:
        _serve_one(settings, reuse_port=False)
        return 0
    # Each worker binds the same port with SO_REUSEPORT; the kernel spreads connections.
    # A scrape of /metrics lands on one worker; a shared directory lets it report them all.
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="tolem-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        return _run_workers(settings)
    finally:
        if metrics_dir is not None:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(settings: Settings) -> int:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_serve_one, args=(settings, True), name=f"tolem-worker-{i}")
        for i in range(settings.workers)
    ]
    for worker in workers:
        worker.start()

    def _forward(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signum)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    for worker in workers:
        worker.join()
    return max((w.exitcode or 0) for w in workers)


async def _check_serve(settings: Settings) -> None:
    async with connected(settings) as conn:
        held = await other_currencies(conn, settings.currency)
    if held:
        # Serving goes on: the database refuses every payment between currencies, and an
        # account of the deployment's currency next to older ones must still be paid.
        _log.warning(
            "currency_mismatch",
            database=held,
            deployment=settings.currency,
            consequence="payments of providers and to accounts in the other currencies are refused",
        )


def register(commands: Commands, common: Parser) -> None:
    """`tolem serve [--host H] [--port P] [--workers N]`."""
    parser = commands.add_parser("serve", parents=[common], help="run the HTTP service")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int)
    parser.set_defaults(run=None)
