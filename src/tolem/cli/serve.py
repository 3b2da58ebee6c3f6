"""`tolem serve`: the HTTP service, in one process or several sharing the port.

The listening socket is bound once, here, without SO_REUSEPORT, and the workers inherit it. So
the kernel itself refuses a second instance on a port already served (with SO_REUSEPORT it would
share the port with the first and answer part of the traffic with its own, possibly older,
settings), at the moment of binding, with no window between a check and the bind.
"""

import asyncio
import contextlib
import errno
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator, Sequence
from typing import Final

import structlog

from tolem import __version__
from tolem.cli.common import Commands, Parser, connected
from tolem.db import providers as provider_db
from tolem.db.ledger import other_currencies
from tolem.db.pool import dsn_target
from tolem.log import configure_logging_for
from tolem.settings import Settings

# As aiohttp's own default: connections waiting to be accepted, shared by all workers.
_BACKLOG: Final = 128
_log = structlog.get_logger("tolem.serve")


class ListenError(Exception):
    """The address to serve cannot be bound: printed as one line naming the settings."""


def listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address `host` names, as asyncio would bind them.

    SO_REUSEADDR lets a restarted server bind while its predecessor's connections linger in
    TIME_WAIT; it never lets two listeners share a port.
    """
    where = f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ListenError(f"cannot listen on {where}: unknown host (--host or TOLEM_HOST)") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # One socket per family, as asyncio binds "::" beside "0.0.0.0".
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(_BACKLOG)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(
                f"cannot listen on {where}: the address is already in use (another tolem serve, "
                "or another program); stop it, or choose another port with --port or TOLEM_PORT",
            ) from exc
        raise ListenError(
            f"cannot listen on {where}: {exc.strerror or exc} (check --host / TOLEM_HOST and "
            "--port / TOLEM_PORT)",
        ) from exc
    return sockets


def _serve_one(settings: Settings, sockets: Sequence[socket.socket]) -> None:
    from aiohttp import web  # noqa: PLC0415 - keeps the other commands' start-up light

    from tolem.app import create_app  # noqa: PLC0415

    configure_logging_for(settings)
    loop: asyncio.AbstractEventLoop | None = None
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = None
    web.run_app(
        create_app(settings),
        sock=sockets,
        access_log=None,
        print=None,
        loop=loop,
    )


def serve(settings: Settings) -> int:
    """Runs the service until signalled; refuses to start while migrations are pending."""
    providers = asyncio.run(_check_serve(settings))
    sockets = listen(settings.host, settings.port)
    assert settings.database_url is not None
    # One line an operator reads to know what this instance is: no secret in it.
    _log.info(
        "serving",
        version=__version__,
        listen=[_address(sock) for sock in sockets],
        workers=settings.workers,
        database=dsn_target(settings.database_url.get_secret_value()),
        providers=providers,
    )
    status = _serve(settings, sockets)
    _log.info("stopped", exit_status=status)
    return status


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@contextlib.contextmanager
def _dispatcher(settings: Settings) -> Iterator[None]:
    """The billing dispatcher beside the workers, once, in this process (TOLEM_DELIVER_IN_SERVE)."""
    if not settings.deliver_in_serve:
        yield
        return
    # Imported only now: with several workers the metrics directory is set, so the dispatcher's
    # counters land there and every worker's scrape reports them.
    from tolem.billing.dispatcher import InBackground  # noqa: PLC0415

    background = InBackground(settings)
    background.start()
    try:
        yield
    finally:
        background.stop()


def _serve(settings: Settings, sockets: list[socket.socket]) -> int:
    if settings.workers == 1:
        with _dispatcher(settings):
            _serve_one(settings, sockets)
        return 0
    # The workers accept from the same sockets; whichever is free takes the next connection.
    # A scrape of /metrics lands on one worker; a shared directory lets it report them all.
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="tolem-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        with _dispatcher(settings):
            return _run_workers(settings, sockets)
    finally:
        if metrics_dir is not None:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(settings: Settings, sockets: list[socket.socket]) -> int:
    context = multiprocessing.get_context("spawn")
    # Each worker gets a duplicate of every socket's descriptor when it is spawned.
    workers = [
        context.Process(target=_serve_one, args=(settings, sockets), name=f"tolem-worker-{i}")
        for i in range(settings.workers)
    ]
    for worker in workers:
        worker.start()
    for sock in sockets:
        sock.close()

    def _forward(signum: int, _frame: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signum)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    for worker in workers:
        worker.join()
    return max((w.exitcode or 0) for w in workers)


async def _check_serve(settings: Settings) -> list[str]:
    """The providers the workers will load; refuses a schema with migrations pending."""
    async with connected(settings) as conn:
        held = await other_currencies(conn, settings.currency)
        providers = list(await provider_db.load_all(conn))
    if held:
        # Serving goes on: the database refuses every payment between currencies, and an
        # account of the deployment's currency next to older ones must still be paid.
        _log.warning(
            "currency_mismatch",
            database=held,
            deployment=settings.currency,
            consequence="payments of providers and to accounts in the other currencies are refused",
        )
    return providers


def register(commands: Commands, common: Parser) -> None:
    """`tolem serve [--host H] [--port P] [--workers N]`."""
    parser = commands.add_parser(
        "serve",
        parents=[common],
        help="run the HTTP service",
        description="Runs the gateway, /healthz, /readyz, /metrics and (with TOLEM_ADMIN_TOKEN) "
        "/admin until stopped; refuses to start while migrations are pending or the address is taken. "
        "Each option wins over its environment variable.",
    )
    parser.add_argument("--host", help="address to listen on (TOLEM_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (TOLEM_PORT, default 8080)")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="server processes sharing the one listening socket (TOLEM_WORKERS, default 1)",
    )
    parser.set_defaults(run=None)
