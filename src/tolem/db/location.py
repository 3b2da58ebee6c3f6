"""Where the database is: the configured URL, or the private cluster under the data dir."""

from pathlib import Path
from typing import Final

import structlog
from pydantic import SecretStr

from tolem.db.embedded import Cluster, NoCluster, default_data_dir, ensure_cluster, exists
from tolem.db.pool import mask_dsn
from tolem.settings import Settings

_log = structlog.get_logger("tolem.database")
# Where clusters were kept, relative to the working directory, before they had a fixed place.
FORMER_DATA_DIR: Final = Path(".tolem")


def cluster_dir(settings: Settings) -> Path:
    """The directory of the private cluster: TOLEM_DATA_DIR, or the per-user default."""
    if settings.data_dir is None:
        return default_data_dir()
    return Path(settings.data_dir).expanduser().resolve()


def _former_cluster(settings: Settings, base: Path) -> str:
    """Advice when a cluster sits where it used to be by default and none is where it is now."""
    former = FORMER_DATA_DIR.resolve()
    if settings.data_dir is not None or former == base or not exists(former):
        return ""
    return (
        f"; there is one in {former}, where clusters were kept before: either set "
        f"TOLEM_DATA_DIR={former}, or stop it (TOLEM_DATA_DIR={former} tolem db stop) and move "
        f"that directory to {base}"
    )


def private_cluster(settings: Settings, *, create: bool) -> Cluster:
    """Starts (or reuses) the private cluster of these settings; creates it only with `create`.

    Raises NoCluster (where it looked, what to do) when there is none and it may not or should
    not be created, EmbeddedUnavailable (with advice) when it cannot be started.
    """
    base = cluster_dir(settings)
    former = _former_cluster(settings, base)
    if not exists(base) and (former or not create):
        default = "" if settings.data_dir is not None else " unset, so the default"
        advice = former or (
            "; `tolem migrate` creates one there; or set TOLEM_DATA_DIR to where yours is, "
            "or TOLEM_DATABASE_URL"
        )
        raise NoCluster(f"no private cluster in {base} (TOLEM_DATA_DIR{default}){advice}")
    return ensure_cluster(base, create=create)


def resolve_database(settings: Settings, *, create: bool = False, verbose: bool = True) -> Settings:
    """Settings with database_url filled in, starting or reusing the private cluster if unset.

    Says which cluster it uses when `verbose`, and always when it had to start it.
    """
    if settings.database_url is not None:
        return settings
    cluster = private_cluster(settings, create=create)
    dsn = cluster.dsn()
    if verbose or cluster.started:
        _log.info(
            "private_database",
            data_dir=str(cluster.data_dir),
            dsn=mask_dsn(dsn),
            started=cluster.started,
            note="TOLEM_DATABASE_URL is unset; using the private cluster",
        )
    return settings.model_copy(update={"database_url": SecretStr(dsn)})
