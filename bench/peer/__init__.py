"""paytechuz (from PyPI) in a virtual environment of its own, for the peer comparison.

The package and its stack (FastAPI, SQLAlchemy, psycopg2, uvicorn) are installed only here,
never into tolem's environment. The environment is created on first use and reused.
"""

import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from bench.harness import Server, free_port

PEER_VERSION = "0.4.1"
REQUIREMENTS = (
    f"paytechuz[fastapi]=={PEER_VERSION}",
    "uvicorn",
    "uvloop",
    "httptools",
    "psycopg2-binary",
)
APP_DIR = Path(__file__).parent
KEY = "bench-key"
PATH = "/payments/payme/webhook"


def venv_dir() -> Path:
    """Where the peer's environment lives (TOLEM_BENCH_PEER_VENV overrides)."""
    default = Path.home() / ".cache" / "tolem-bench" / f"paytechuz-{PEER_VERSION}"
    return Path(os.environ.get("TOLEM_BENCH_PEER_VENV", default))


def ensure_venv() -> Path:
    """The environment's python, installing it first if needed; raises if that fails."""
    target = venv_dir()
    python = target / "bin" / "python"
    marker = target / ".installed"
    if marker.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
        check=True,
        capture_output=True,
        timeout=600,
    )
    marker.touch()
    return python


async def create_database(server_dsn: str, name: str) -> str:
    """A fresh database for the peer on the same cluster; its DSN (asyncpg form)."""
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{server_dsn.rpartition('/')[0]}/{name}"


def sqlalchemy_dsn(dsn: str) -> str:
    """The same DSN for SQLAlchemy with psycopg2."""
    return "postgresql+psycopg2://" + dsn.split("://", 1)[1]


def setup(python: Path, dsn: str, accounts: int, pool: int) -> None:
    """Tables and accounts, by the peer app itself."""
    env = {**os.environ, "PEER_DSN": sqlalchemy_dsn(dsn), "PEER_POOL": str(pool)}
    subprocess.run(
        [str(python), str(APP_DIR / "peer_app.py"), "--setup", str(accounts)],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )


def server(python: Path, dsn: str, *, workers: int, pool: int, overflow: int = 64) -> Server:
    """uvicorn serving the peer app with `workers` processes, access log off as tolem's is."""
    port = free_port()
    env = {
        **os.environ,
        "PEER_DSN": sqlalchemy_dsn(dsn),
        "PEER_POOL": str(pool),
        "PEER_OVERFLOW": str(overflow),
        "PEER_KEY": KEY,
    }
    argv = [
        str(python),
        "-m",
        "uvicorn",
        "peer_app:app",
        "--app-dir",
        str(APP_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    ]
    return Server(argv, env, port)
