"""Schema migrations (sql/migrations/NNNN_slug.sql), then the functions files (sql/functions/*.sql).

Migrations are history: each runs once, in version order, in its own transaction, and is recorded
with its sha256. An applied file whose content changed is refused: history is not rewritten.

Functions files are the current code: every PL/pgSQL function and trigger, written with CREATE OR
REPLACE so that applying a file twice is harmless. After the pending migrations, every file whose
sha256 differs from the one recorded in schema_functions (or that has none) is applied, in file
name order, all in one transaction. An older release's migrate therefore puts its own bodies back,
which is what a rollback of the code wants. A file that differs counts as pending exactly like a
migration: `tolem serve`, /readyz and the commands refuse to work until `tolem migrate` ran.

A session advisory lock makes concurrent runners (two hosts deploying at once) take turns, and the
second finds nothing left to do.

The order rule, because a fresh database runs every migration before any functions file:
  * A migration may refer only to functions that exist at that migration's time on every
    database, that is functions an earlier migration created (0001 made tolem_refuse_change,
    which later migrations' triggers use). The functions files then replace the bodies.
  * A migration that adds a trigger to a table running code writes (payments, transfers) creates
    the trigger and its function itself, so the rule holds from its own commit on; the same
    function and trigger go into a functions file, which is their current definition from then on.
  * Within the functions files, what is checked when a file is applied (a trigger's function, a
    LANGUAGE sql body) may name functions of migrations, of the same file or of a file earlier in
    name order; PL/pgSQL bodies are resolved only when they run.
  * Types, tables, keys and indexes stay in migrations; the files hold only functions, their
    comments and triggers.
  * Changing a function's arguments or result type needs a migration that drops the old one; a
    function no file defines any more is dropped by a migration too (DROP FUNCTION IF EXISTS).
    Until the files commit, right after, bodies still calling a dropped function fail, roll
    back and are answered "retry" (servers of the previous release, during a deploy).
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
_FUNCTIONS_NAME_RE: Final = re.compile(r"[a-z0-9_]+\.sql")

_CREATE_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        NOT NULL CONSTRAINT pk__schema_migrations PRIMARY KEY,
    name       text        NOT NULL,
    sha256     text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE schema_migrations IS 'Migrations applied by tolem migrate, with the checksum of each file.';
"""
_RECORD_FUNCTIONS: Final = """
INSERT INTO schema_functions (name, sha256) VALUES ($1, $2)
ON CONFLICT ON CONSTRAINT pk__schema_functions
DO UPDATE SET sha256 = excluded.sha256, applied_at = now()
"""


class MigrationError(RuntimeError):
    """The database and the migration files disagree; nothing was applied past this point."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: str
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        """Checksum recorded when applied; an edited file no longer matches it."""
        return _sha256(self.sql)

    @property
    def label(self) -> str:
        """How commands and /readyz name it."""
        return self.name


@dataclass(frozen=True, slots=True)
class FunctionsFile:
    """One file of sql/functions: the current definition of some functions and triggers."""

    name: str
    sql: str

    @property
    def sha256(self) -> str:
        """Checksum recorded when applied; a file that differs is applied again."""
        return _sha256(self.sql)

    @property
    def label(self) -> str:
        """How commands and /readyz name it, apart from the migrations."""
        return f"functions/{self.name}"


Pending = Migration | FunctionsFile


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


def load_functions(directory: Path | None = None) -> list[FunctionsFile]:
    """The functions files beside a migrations directory (its sibling `functions`), in name order.

    A migrations directory without that sibling has none (tests build partial histories so).
    """
    functions = (directory or migrations_dir()).parent / "functions"
    if not functions.is_dir():
        return []
    files = []
    for path in sorted(functions.glob("*.sql")):
        if _FUNCTIONS_NAME_RE.fullmatch(path.name) is None:
            raise MigrationError(f"functions file name must be lower-case slug.sql: {path.name}")
        files.append(FunctionsFile(path.name, path.read_text(encoding="utf-8")))
    return files


async def _applied(conn: asyncpg.Connection) -> dict[str, str]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, sha256 FROM schema_migrations")
    return {row["version"]: row["sha256"] for row in rows}


async def _applied_functions(conn: asyncpg.Connection) -> dict[str, str] | None:
    """Recorded checksums of functions files; None before the migration that keeps them."""
    exists = await conn.fetchval("SELECT to_regclass('schema_functions') IS NOT NULL")
    if not exists:
        return None
    rows = await conn.fetch("SELECT name, sha256 FROM schema_functions")
    return {row["name"]: row["sha256"] for row in rows}


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


def _differing(files: list[FunctionsFile], recorded: dict[str, str] | None) -> list[FunctionsFile]:
    recorded = recorded or {}
    return [f for f in files if recorded.get(f.name) != f.sha256]


async def pending(conn: asyncpg.Connection, directory: Path | None = None) -> list[Pending]:
    """Migrations not yet applied, then functions files that differ from what was applied.

    Raises MigrationError on an edited or unknown migration.
    """
    todo: list[Pending] = []
    todo.extend(_verify(load_migrations(directory), await _applied(conn)))
    todo.extend(_differing(load_functions(directory), await _applied_functions(conn)))
    return todo


async def migrate(conn: asyncpg.Connection, directory: Path | None = None) -> list[str]:
    """Applies what is pending: migrations one transaction each, then the functions files that
    differ, together in one. Returns the labels of what it applied."""
    migrations = load_migrations(directory)
    functions = load_functions(directory)
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
        recorded = await _applied_functions(conn)
        if functions and recorded is None:
            raise MigrationError("schema_functions is missing: migration 0015 must come with sql/functions")
        changed = _differing(functions, recorded)
        if changed:
            async with conn.transaction():
                for file in changed:
                    await conn.execute(file.sql)
                    await conn.execute(_RECORD_FUNCTIONS, file.name, file.sha256)
        return [m.label for m in todo] + [f.label for f in changed]
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
