"""The daemons a deployment beyond one machine adds, started for a test like the throwaway
cluster is: PgBouncer (transaction pooling) in front of the test server.

Each fixture needs the Debian package's binary. Without it the test is skipped and says which
package to install; under CI, whose script installs them, a missing binary fails the run.
"""

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from bench.pgbouncer import PgBouncer
from bench.topology import missing

PACKAGES = {"pgbouncer": "pgbouncer", "haproxy": "haproxy", "pg_basebackup": "postgresql"}


def need(*names: str) -> None:
    """Skips the test (fails it under CI) unless every named binary is installed."""
    absent = missing(*names)
    if not absent:
        return
    packages = " ".join(sorted({PACKAGES[name] for name in absent}))
    if os.environ.get("CI"):
        pytest.fail(f"{', '.join(absent)} missing: .ci/run must install {packages}")
    pytest.skip(f"{', '.join(absent)} not installed (apt-get install {packages})")


@pytest.fixture
def pgbouncer(server_dsn: str) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling mode in front of the test server."""
    need("pgbouncer")
    parts = urlsplit(server_dsn)
    bouncer = PgBouncer(
        parts.port or 5432,
        upstream_host=parts.hostname or "127.0.0.1",
        user=parts.username or "postgres",
    )
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()
