"""Ledger audit: the invariants of sql/checks/ledger_invariants.sql, run one check at a time.

Each check is one set-based query (no row-by-row loops), so it scales with the tables' size the
way a sequential scan with a hash join does; running them separately gives progress on long runs
and names the check that found something.
"""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import asyncpg

from tolem.db.migrate import migrations_dir

_HEADER: Final = re.compile(r"^-- check: ([a-z_]+)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant."""

    check: str
    subject: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class Check:
    """One named invariant query."""

    name: str
    sql: str


def checks_file() -> Path:
    """sql/checks/ledger_invariants.sql beside the migrations in use."""
    return migrations_dir().parent / "checks" / "ledger_invariants.sql"


def load_checks(path: Path | None = None) -> list[Check]:
    """The named checks of the invariants file, in file order."""
    text = (path or checks_file()).read_text(encoding="utf-8")
    parts = _HEADER.split(text)
    # split() yields [preamble, name1, body1, name2, body2, ...]
    return [Check(name, body.strip()) for name, body in zip(parts[1::2], parts[2::2], strict=True)]


Progress = Callable[[str, int, float], None]


async def audit(conn: asyncpg.Connection, progress: Progress | None = None) -> list[Violation]:
    """Runs every check in one repeatable-read snapshot, so they all judge the same ledger."""
    found: list[Violation] = []
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for check in load_checks():
            started = time.perf_counter()
            rows = await conn.fetch(check.sql)
            found += [Violation(check.name, row[1], row[2]) for row in rows]
            if progress is not None:
                progress(check.name, len(rows), time.perf_counter() - started)
    return found
