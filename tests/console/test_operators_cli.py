"""`tolem operator …` against the test database: passwords from stdin, never in arguments."""

import io
from typing import Any

import asyncpg
import pytest

from tests.cli.conftest import Cli, Run, _reset_logging, cli
from tolem.protocols.passwords import PERSON_COST, check_password

__all__ = ["_reset_logging", "cli"]

GOOD = "a long enough password"


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Sets what the next command reads on its standard input."""

    def feed(text: str) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(text))

    return feed


def one_error(run: Run, fragment: str) -> None:
    """Bad input: exit 2 and one line on stderr that says what was wrong."""
    assert run.code == 2, run
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], run.err


async def test_add_stores_a_memory_hard_hash(cli: Cli, stdin: Any, pool: asyncpg.Pool) -> None:
    """operator add reads the password from stdin and stores scrypt at the people's cost, not it."""
    stdin(GOOD + "\n")
    run = await cli("operator", "add", "Anna", "--role", "admin", "--json")
    assert run.code == 0, run.err
    assert run.json() == {"name": "anna", "role": "admin"}
    row = await pool.fetchrow("SELECT name, role, enabled, password_hash FROM operators")
    assert (row["name"], row["role"], row["enabled"]) == ("anna", "admin", True)
    n, r, p = PERSON_COST
    assert row["password_hash"].startswith(f"scrypt${n}${r}${p}$")
    assert GOOD not in row["password_hash"]
    assert check_password(GOOD, row["password_hash"])
    assert GOOD not in run.out + run.err


@pytest.mark.parametrize(
    ("argv", "feed", "fragment"),
    [
        (["operator", "add", "anna", "--role", "admin"], "short\n", "10 to 256 characters"),
        (["operator", "add", "an na", "--role", "admin"], GOOD + "\n", "operator name must be"),
        (["operator", "add", "anna", "--role", "root"], GOOD + "\n", "invalid choice"),
        (["operator", "password", "nobody"], GOOD + "\n", "no operator 'nobody'"),
        (["operator", "disable", "nobody"], "", "no operator 'nobody'"),
    ],
)
async def test_bad_input_changes_nothing(
    cli: Cli, stdin: Any, pool: asyncpg.Pool, argv: list[str], feed: str, fragment: str
) -> None:
    """A short password, a bad name or role, an unknown operator: one error line, nothing stored."""
    stdin(feed)
    one_error(await cli(*argv), fragment)
    assert await pool.fetchval("SELECT count(*) FROM operators") == 0


async def test_duplicate_name_is_refused(cli: Cli, stdin: Any) -> None:
    """A second operator with the same name (in any case) is refused."""
    stdin(GOOD + "\n")
    assert (await cli("operator", "add", "anna", "--role", "support")).code == 0
    stdin(GOOD + "\n")
    one_error(await cli("operator", "add", "ANNA", "--role", "admin"), "exists already")


async def test_list_role_disable_enable(cli: Cli, stdin: Any, pool: asyncpg.Pool) -> None:
    """list shows name, role and state (no hash); role, disable and enable change them."""
    stdin(GOOD + "\n")
    await cli("operator", "add", "bolot", "--role", "support")
    assert (await cli("operator", "role", "bolot", "admin")).code == 0
    assert (await cli("operator", "disable", "bolot")).code == 0
    listed = await cli("operator", "list")
    assert listed.code == 0 and listed.out.split() == ["bolot", "admin", "disabled"]
    assert "scrypt" not in listed.out
    assert (await cli("operator", "enable", "bolot")).code == 0
    [entry] = (await cli("operator", "list", "--json")).json()
    assert entry["enabled"] is True and entry["role"] == "admin" and "password_hash" not in entry


async def test_new_password_replaces_the_old(cli: Cli, stdin: Any, pool: asyncpg.Pool) -> None:
    """operator password sets a new hash that the old password no longer matches."""
    stdin(GOOD + "\n")
    await cli("operator", "add", "aida", "--role", "support")
    stdin("another long password\n")
    assert (await cli("operator", "password", "aida")).code == 0
    stored = await pool.fetchval("SELECT password_hash FROM operators")
    assert check_password("another long password", stored) and not check_password(GOOD, stored)


async def test_unlock_forgets_failures(cli: Cli, pool: asyncpg.Pool) -> None:
    """operator unlock ends a name's lockout; a second unlock says there was nothing to do."""
    await pool.execute(
        "INSERT INTO operator_login_throttles (scope, key, failures, last_attempt_at, locked_until) "
        "VALUES ('operator', 'anna', 9, now(), now() + interval '10 minutes')"
    )
    first = await cli("operator", "unlock", "Anna", "--json")
    assert first.json() == {"name": "anna", "unlocked": True}
    assert await pool.fetchval("SELECT count(*) FROM operator_login_throttles") == 0
    assert "nothing to unlock" in (await cli("operator", "unlock", "anna")).out
