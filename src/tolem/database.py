"""Where the database is: the configured URL, or the private cluster under the data dir."""

from pathlib import Path

import structlog
from pydantic import SecretStr

from tolem.db.embedded import ensure_cluster
from tolem.db.pool import mask_dsn
from tolem.settings import Settings

_log = structlog.get_logger("tolem.database")


def resolve_database(settings: Settings) -> Settings:
    """Settings with database_url filled in, starting or reusing the private cluster if unset.

    Raises EmbeddedUnavailable (with advice) when there is no URL and no way to start one.
    """
    if settings.database_url is not None:
        return settings
    base = Path(settings.data_dir).resolve()
    cluster = ensure_cluster(base)
    dsn = cluster.dsn()
    _log.info(
        "private_database",
        data_dir=str(cluster.data_dir),
        dsn=mask_dsn(dsn),
        note="TOLEM_DATABASE_URL is unset; using the private cluster",
    )
    return settings.model_copy(update={"database_url": SecretStr(dsn)})
