"""`tolem db status|start|stop`: the private cluster used when TOLEM_DATABASE_URL is unset."""

import argparse
from typing import Any, Final

from tolem.cli.common import Commands, Parser, emit
from tolem.db import embedded
from tolem.db.location import cluster_dir, private_cluster
from tolem.db.pool import mask_dsn
from tolem.settings import Settings

# As `pg_ctl status` and LSB init scripts answer: the cluster is not running.
NOT_RUNNING: Final = 3


async def cmd_db_status(args: argparse.Namespace, settings: Settings) -> int:
    """Where the private cluster is, its port, whether it runs; exit 3 when it does not."""
    state = embedded.cluster_state(cluster_dir(settings))
    configured = settings.database_url
    data: dict[str, Any] = {
        "data_dir": str(state.base_dir),
        "exists": state.exists,
        "running": state.server is not None,
        "port": state.port,
        "pid": None if state.server is None else state.server.pid,
        "dsn": state.dsn,
        "in_use": configured is None,
    }
    if state.server is not None:
        running = f"running (pid {state.server.pid}), port {state.port}"
    elif state.exists:
        running = f"stopped, port {state.port}" if state.port is not None else "stopped"
    else:
        running = "not created yet (`tolem migrate` creates it)"
    lines = [f"private cluster: {state.base_dir}", f"state: {running}"]
    if state.dsn is not None:
        lines.append(f"dsn: {mask_dsn(state.dsn)}")
    if configured is not None:
        data["database_url"] = mask_dsn(configured.get_secret_value())
        lines.append(f"not in use: TOLEM_DATABASE_URL is set ({data['database_url']})")
    emit(args, data, "\n".join(lines))
    return 0 if state.server is not None else NOT_RUNNING


async def cmd_db_start(args: argparse.Namespace, settings: Settings) -> int:
    """Starts the private cluster, creating it where there is none yet."""
    cluster = private_cluster(settings, create=True)
    base = cluster_dir(settings)
    dsn = mask_dsn(cluster.dsn())
    emit(
        args,
        {"data_dir": str(base), "port": cluster.port, "dsn": dsn},
        f"private cluster: {base}\nstate: running, port {cluster.port}\ndsn: {dsn}",
    )
    return 0


async def cmd_db_stop(args: argparse.Namespace, settings: Settings) -> int:
    """Stops the private cluster (a fast shutdown: open transactions are rolled back)."""
    base = cluster_dir(settings)
    stopped = embedded.stop(base)
    text = (
        f"stopped the private cluster in {base}"
        if stopped
        else f"the private cluster in {base} is not running"
    )
    emit(args, {"data_dir": str(base), "stopped": stopped}, text)
    return 0


def register(commands: Commands, common: Parser) -> None:
    """`tolem db status`, `tolem db start`, `tolem db stop`."""
    db = commands.add_parser("db", parents=[common], help="the private PostgreSQL cluster")
    d_cmds = db.add_subparsers(dest="db_command", required=True, parser_class=Parser)
    # These manage the cluster themselves, so main resolves no database for them.
    for verb, run, text in (
        ("status", cmd_db_status, "where it is, its port, whether it runs (exit 3 if not)"),
        ("start", cmd_db_start, "start it, creating it if there is none"),
        ("stop", cmd_db_stop, "stop it"),
    ):
        d_cmds.add_parser(verb, parents=[common], help=text).set_defaults(run=run, cluster="none")
