"""Forward-only migration runner for sql/migrations/NNNN_slug.sql.

Each file runs in its own transaction and is recorded with its sha256; a session advisory lock
makes concurrent runners (two hosts deploying at once) take turns, and the second finds nothing
left to do. An applied file whose content changed is refused: history is not rewritten.
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg

import tolem

# Arbitrary but fixed: every tolem process agrees on it, nothing else in the database uses it.
MIGRATION_LOCK_KEY: Final = 0x7017E5
_NAME_RE: Final = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")

_CREATE_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        NOT NULL CONSTRAINT pk__schema_migrations PRIMARY KEY,
    name       text        NOT NULL,
    sha256     text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE schema_migrations IS 'Migrations applied by tolem migrate, with the checksum of each file.';
"""


class MigrationError(RuntimeError):
    """The database and the migration files disagree; nothing was applied past this point."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: str
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        """Checksum recorded when applied; an edited file no longer matches it."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    """sql/migrations of the source tree, or the copy packed into an installed wheel."""
    package = Path(tolem.__file__).resolve().parent
    for candidate in (package / "sql" / "migrations", package.parents[1] / "sql" / "migrations"):
        if candidate.is_dir():
            return candidate
    raise MigrationError("migration files not found next to the tolem package")


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """All migration files in version order; a misnamed or duplicate version is an error."""
    directory = directory or migrations_dir()
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME_RE.fullmatch(path.name)
        if match is None:
            raise MigrationError(f"migration file name must be NNNN_slug.sql: {path.name}")
        version = match.group(1)
        if version in found:
            raise MigrationError(f"two migration files share version {version}")
        found[version] = Migration(version, path.name, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def _applied(conn: asyncpg.Connection) -> dict[str, str]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, sha256 FROM schema_migrations")
    return {row["version"]: row["sha256"] for row in rows}


def _verify(migrations: list[Migration], applied: dict[str, str]) -> list[Migration]:
    known = {m.version for m in migrations}
    unknown = sorted(set(applied) - known)
    if unknown:
        raise MigrationError(f"database has migrations this code does not know: {', '.join(unknown)}")
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.sha256:
            raise MigrationError(
                f"{migration.name} changed after it was applied; add a new migration instead",
            )
    return [m for m in migrations if m.version not in applied]


async def pending(conn: asyncpg.Connection, directory: Path | None = None) -> list[Migration]:
    """Migrations not yet applied; raises MigrationError on an edited or unknown one."""
    return _verify(load_migrations(directory), await _applied(conn))


async def migrate(conn: asyncpg.Connection, directory: Path | None = None) -> list[str]:
    """Applies what is pending, in order, one transaction each. Returns the names applied."""
    migrations = load_migrations(directory)
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        todo = _verify(migrations, await _applied(conn))
        for migration in todo:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.sha256,
                )
        return [m.name for m in todo]
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
