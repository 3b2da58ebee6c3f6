"""The private cluster through real `tolem` processes: its port, its restarts, its location."""

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.cli.conftest import clean_env, free_port, wait_ready
from tolem.db.embedded import default_data_dir, stop_cluster

pytestmark = pytest.mark.slow

_RESULT = re.compile(r"<result>(\d+)</result>")


def tolem(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One `tolem` command as its own process."""
    return subprocess.run(
        [sys.executable, "-m", "tolem", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def served_port(data_dir: Path) -> int:
    """The port the live server of this data directory listens on (postmaster.pid, line 4)."""
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()[3])


async def osmp(session: aiohttp.ClientSession, url: str, command: str, txn: str, code: str) -> int:
    """The OSMP result code of one check or pay of 10.00."""
    query = {"command": command, "txn_id": txn, "account": code, "sum": "10.00", "txn_date": "20261129100000"}
    async with session.get(url, params=query) as response:
        body = await response.text()
    found = _RESULT.search(body)
    assert found is not None, body
    return int(found.group(1))


async def _accepting_after(port: int, since: float) -> float:
    """Seconds from `since` until PostgreSQL on `port` lets a session in."""
    while True:
        try:
            conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/tolem", timeout=1)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            assert time.monotonic() - since < 60, "the cluster did not come back in 60 s"
            await asyncio.sleep(0.005)
            continue
        await conn.close()
        return time.monotonic() - since


def _prepare(env: dict[str, str]) -> str:
    """Migrates the private cluster, adds an OSMP provider and an account; the account's code."""
    for args in (
        ("migrate",),
        ("provider", "add", "kiosk", "--protocol", "osmp", "--allow-ip", "127.0.0.1/32"),
    ):
        done = tolem(env, *args)
        assert done.returncode == 0, done.stderr
    created = tolem(env, "account", "create", "--email", "a@b.kg", "--name", "Asanov Asan", "--json")
    assert created.returncode == 0, created.stderr
    code = re.search(r'"payment_code": "(\w+)"', created.stdout)
    assert code is not None
    return code.group(1)


async def test_serve_recovers_when_the_private_cluster_restarts(data_dir: Path) -> None:
    """A running `tolem serve` answers only "retry" while its private cluster is stopped (`tolem
    db stop`) and succeeds again once it is started (`tolem db start`), without a restart of its
    own: the cluster comes back on its port."""
    env = clean_env(TOLEM_DATA_DIR=str(data_dir), TOLEM_LOG_FORMAT="json", TOLEM_REQUEST_DEADLINE="2")
    code = _prepare(env)
    port_before = served_port(data_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}/gw/kiosk"
    server = subprocess.Popen(
        [sys.executable, "-m", "tolem", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        async with aiohttp.ClientSession() as session:
            assert await osmp(session, url, "check", "1", code) == 0
            assert await osmp(session, url, "pay", "1", code) == 0

            stopped = await asyncio.to_thread(tolem, env, "db", "stop")
            assert stopped.returncode == 0, stopped.stderr
            during = [await osmp(session, url, command, "2", code) for command in ("check", "pay") * 3]
            assert during == [1] * 6

            # While the cluster starts again, poll both it and the gateway, to time the gap
            # between PostgreSQL accepting connections and the gateway's first success.
            started = time.monotonic()
            restart = asyncio.create_task(asyncio.to_thread(tolem, env, "db", "start"))
            accepting_task = asyncio.create_task(_accepting_after(port_before, started))
            before_success = []
            while (result := await osmp(session, url, "check", "3", code)) != 0:
                before_success.append(result)
                assert time.monotonic() - started < 60, "no success 60 s after the restart began"
                await asyncio.sleep(0.005)
            succeeded = time.monotonic() - started
            accepting = await accepting_task
            restarted = await restart
            assert restarted.returncode == 0, restarted.stderr
            assert served_port(data_dir) == port_before
            assert set(before_success) <= {1}
            assert await osmp(session, url, "pay", "3", code) == 0
            assert await osmp(session, url, "pay", "2", code) == 0
        assert server.poll() is None, "the server must have run throughout"
        print(
            f"cluster accepting {accepting:.3f} s after the restart began, first OSMP success at "
            f"{succeeded:.3f} s: {succeeded - accepting:.3f} s later, after {len(before_success)} "
            "retry answer(s)",
        )
    finally:
        server.terminate()
        server.communicate(timeout=15)
    shown = tolem(env, "account", "show", "--code", code)
    assert shown.returncode == 0, shown.stderr
    assert "balance: 30.00 KGS" in shown.stdout


def test_a_taken_port_is_named(data_dir: Path) -> None:
    """When the cluster's own port is taken by another program, starting it says so and which
    port, instead of moving to another port the running servers do not know."""
    env = clean_env(TOLEM_DATA_DIR=str(data_dir), TOLEM_LOG_FORMAT="json")
    assert tolem(env, "migrate").returncode == 0
    port = served_port(data_dir)
    assert tolem(env, "db", "stop").returncode == 0
    with socket.socket() as squatter:
        # As servers do: the cluster's own closed connections may still be in TIME_WAIT.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        refused = tolem(env, "migrate")
    assert refused.returncode == 1
    assert f"port {port}" in refused.stderr
    assert "in use" in refused.stderr
    assert "Traceback" not in refused.stderr
    again = tolem(env, "migrate")
    assert again.returncode == 0, again.stderr
    assert served_port(data_dir) == port


def test_read_only_commands_never_create_a_cluster(data_dir: Path) -> None:
    """Where there is no cluster, a command that only reads (or serves) creates none: it exits
    non-zero with one line naming where it looked and `tolem migrate`, and leaves no directory."""
    env = clean_env(TOLEM_DATA_DIR=str(data_dir), TOLEM_LOG_FORMAT="json")
    for args in (
        ("account", "show", "1"),
        ("journal",),
        ("provider", "list"),
        ("audit",),
        ("sweep", "--once"),
        ("serve", "--port", str(free_port())),
    ):
        done = tolem(env, *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, done.stderr
        assert str(data_dir) in lines[0]
        assert "tolem migrate" in lines[0]
        assert not data_dir.exists(), args


def test_default_location_is_per_user_not_per_directory(tmp_path: Path) -> None:
    """Without TOLEM_DATA_DIR, commands run from different directories look for the same
    cluster, in the user's data directory (/var/lib/tolem for root), and create nothing in either."""
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    cron, shell = tmp_path / "cron", tmp_path / "shell"
    for directory in (home, xdg, cron, shell):
        directory.mkdir()
    env = clean_env(HOME=str(home), XDG_DATA_HOME=str(xdg), TOLEM_LOG_FORMAT="json")
    expected = Path("/var/lib/tolem") if os.geteuid() == 0 else xdg / "tolem"
    seen = []
    for cwd in (cron, shell):
        done = subprocess.run(
            [sys.executable, "-m", "tolem", "db", "status", "--json"],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode in (0, 3), done.stderr
        seen.append(json.loads(done.stdout)["data_dir"])
        assert list(cwd.iterdir()) == []
    assert seen == [str(expected)] * 2


def test_default_data_dir_follows_the_user() -> None:
    """The default is $XDG_DATA_HOME/tolem, else ~/.local/share/tolem, and /var/lib/tolem for
    root, whose home the postgres user cannot enter."""
    assert default_data_dir(1000, {"XDG_DATA_HOME": "/data/u", "HOME": "/home/u"}) == Path("/data/u/tolem")
    assert default_data_dir(1000, {"HOME": "/home/u"}) == Path("/home/u/.local/share/tolem")
    # The specification says a relative XDG_DATA_HOME is to be ignored.
    assert default_data_dir(1000, {"XDG_DATA_HOME": "rel", "HOME": "/home/u"}) == Path(
        "/home/u/.local/share/tolem"
    )
    assert default_data_dir(0, {"XDG_DATA_HOME": "/root/x", "HOME": "/root"}) == Path("/var/lib/tolem")


def test_db_status_and_stop(data_dir: Path) -> None:
    """`tolem db status` says where the cluster is, its port, whether it runs and its DSN;
    `tolem db stop` stops it (and says so when it was not running); `db start` starts it again
    on the same port."""
    env = clean_env(TOLEM_DATA_DIR=str(data_dir), TOLEM_LOG_FORMAT="json")
    missing = tolem(env, "db", "status", "--json")
    assert missing.returncode == 3
    assert json.loads(missing.stdout) | {"data_dir": None} == {
        "data_dir": None,
        "exists": False,
        "running": False,
        "port": None,
        "pid": None,
        "dsn": None,
        "in_use": True,
    }
    assert not data_dir.exists()
    assert tolem(env, "migrate").returncode == 0
    port = int((data_dir / "port").read_text())
    running = tolem(env, "db", "status", "--json")
    assert running.returncode == 0, running.stderr
    state = json.loads(running.stdout)
    assert state["data_dir"] == str(data_dir)
    assert state["exists"] is state["running"] is True
    assert state["port"] == port
    assert state["dsn"] == f"postgresql://postgres@127.0.0.1:{port}/tolem"
    text = tolem(env, "db", "status")
    assert f"port {port}" in text.stdout
    assert "running" in text.stdout
    stopped = tolem(env, "db", "stop", "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout) == {"data_dir": str(data_dir), "stopped": True}
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()
    after = tolem(env, "db", "status", "--json")
    assert after.returncode == 3
    assert json.loads(after.stdout)["running"] is False
    assert json.loads(after.stdout)["port"] == port
    again = tolem(env, "db", "stop")
    assert again.returncode == 0
    assert "not running" in again.stdout
    started = tolem(env, "db", "start", "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["port"] == port
    assert served_port(data_dir) == port


def test_db_status_names_a_configured_database(data_dir: Path) -> None:
    """With TOLEM_DATABASE_URL set, `db status` says the private cluster is not in use and shows
    the configured DSN with its password masked."""
    env = clean_env(
        TOLEM_DATA_DIR=str(data_dir),
        TOLEM_DATABASE_URL="postgresql://tolem:s3cret@db.example:5432/tolem",
    )
    done = tolem(env, "db", "status", "--json")
    state = json.loads(done.stdout)
    assert state["in_use"] is False
    assert state["database_url"] == "postgresql://tolem:***@db.example:5432/tolem"
    text = tolem(env, "db", "status")
    assert "s3cret" not in text.stdout + text.stderr
    assert "TOLEM_DATABASE_URL" in text.stdout


def test_a_cluster_in_the_former_place_is_named_not_replaced(tmp_path: Path) -> None:
    """With TOLEM_DATA_DIR unset, a cluster in ./.tolem (where clusters used to be kept) and none
    in the default place: commands, `tolem migrate` included, create nothing and say how to
    keep using it."""
    home, xdg, work = tmp_path / "home", tmp_path / "xdg", tmp_path / "work"
    for directory in (home, xdg, work):
        directory.mkdir()
    default = Path("/var/lib/tolem") if os.geteuid() == 0 else xdg / "tolem"
    if default.exists():
        pytest.skip(f"{default} exists on this machine")
    # What marks a created cluster: its version file (the former cluster need not run).
    (work / ".tolem" / "pgdata").mkdir(parents=True)
    (work / ".tolem" / "pgdata" / "PG_VERSION").write_text("15\n")
    env = clean_env(HOME=str(home), XDG_DATA_HOME=str(xdg), TOLEM_LOG_FORMAT="json")
    try:
        for args in (("migrate",), ("account", "show", "1")):
            done = subprocess.run(
                [sys.executable, "-m", "tolem", *args],
                env=env,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 1, done.stderr
            assert f"TOLEM_DATA_DIR={work / '.tolem'}" in done.stderr
            assert str(default) in done.stderr
            assert not default.exists()
    finally:
        if default.exists():  # only if the refusal failed and a cluster was made after all
            stop_cluster(default / "pgdata", mode="immediate")
            shutil.rmtree(default, ignore_errors=True)


def test_a_command_on_a_running_cluster_says_nothing_unasked(data_dir: Path) -> None:
    """With the private cluster already running a command prints no diagnostic line; -v names
    the cluster in one line; a command that had to start the cluster says so in one line."""
    env = clean_env(TOLEM_DATA_DIR=str(data_dir), TOLEM_LOG_FORMAT="json")
    assert tolem(env, "migrate").returncode == 0
    quiet = tolem(env, "provider", "list")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    verbose = tolem(env, "-v", "provider", "list")
    [line] = verbose.stderr.splitlines()
    assert json.loads(line)["event"] == "private_database"
    assert json.loads(line)["started"] is False
    assert tolem(env, "db", "stop").returncode == 0
    restarted = tolem(env, "provider", "list")
    assert restarted.returncode == 0, restarted.stderr
    [line] = restarted.stderr.splitlines()
    assert json.loads(line)["started"] is True
