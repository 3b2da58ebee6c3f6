"""The `tolem` command as a whole: migrations, usage, --json, and bad settings or an unreachable
database reported on one line."""

from pathlib import Path

import asyncpg
import pytest

import tolem
from tests.cli.conftest import Cli, one_error_line


class TestGeneral:
    async def test_migrate_is_a_noop_when_current(self, cli: Cli, database_url: str) -> None:
        """The test database is current: migrate says so, names the database, and exits 0."""
        run = await cli("migrate", "--json")
        assert run.code == 0
        assert run.json()["applied"] == []
        assert run.json()["database"].endswith("/" + database_url.rpartition("/")[2])

    async def test_unknown_command_is_one_line(self, cli: Cli) -> None:
        """argparse errors are folded into the same one-line form."""
        one_error_line(await cli("frobnicate"))
        one_error_line(await cli("account", "create", "--bogus"))

    async def test_json_before_the_command_counts(self, cli: Cli) -> None:
        """`tolem --json COMMAND` answers JSON, as `tolem COMMAND --json` does."""
        before = await cli("--json", "provider", "list")
        after = await cli("provider", "list", "--json")
        plain = await cli("provider", "list")
        assert before.code == after.code == plain.code == 0
        assert before.json() == after.json() == []
        assert plain.out.strip() == "no providers"
        nested = await cli("--json", "account", "create", "--email", "j@example.kg", "--name", "J")
        assert "payment_code" in nested.json()

    async def test_bare_command_prints_usage(self, cli: Cli) -> None:
        """`tolem` alone prints the command list on stderr and exits 2; --version names the version."""
        bare = await cli()
        assert bare.code == 2
        assert bare.out == ""
        assert "usage: tolem" in bare.err
        assert "sweep" in bare.err
        version = await cli("--version")
        assert version.code == 0
        assert version.out.strip() == f"tolem {tolem.__version__}"

    async def test_pending_migrations_block_commands(
        self,
        cli: Cli,
        monkeypatch: pytest.MonkeyPatch,
        server_dsn: str,
    ) -> None:
        """Against an unmigrated database, commands refuse and point to `tolem migrate`."""
        import uuid

        name = f"tolem_blank_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(server_dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            monkeypatch.setenv("TOLEM_DATABASE_URL", f"{server_dsn.rpartition('/')[0]}/{name}")
            run = await cli("account", "create", "--email", "a@b.kg", "--name", "A")
            one_error_line(run)
            assert "tolem migrate" in run.err
            serve = await cli("serve", "--port", "0")
            one_error_line(serve)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()

    async def test_changed_functions_file_blocks_serve_until_migrated(
        self, cli: Cli, database_url: str
    ) -> None:
        """New function code the database has not applied stops serve, naming the file; migrate applies it."""
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE schema_functions SET sha256 = repeat('0', 64) WHERE name = 'payments.sql'"
            )
            serve = await cli("serve", "--port", "0")
            one_error_line(serve)
            assert "functions/payments.sql" in serve.err
            assert "tolem migrate" in serve.err
            migrated = await cli("migrate")
            assert migrated.code == 0
            assert migrated.out.splitlines()[1:] == ["applied functions/payments.sql"]
            listed = await cli("provider", "list")
            assert listed.code == 0
        finally:
            await conn.close()

    async def test_unreachable_database_is_one_line(self, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        """A database that does not answer is reported on one line, exit 1."""
        monkeypatch.setenv("TOLEM_DATABASE_URL", "postgresql://postgres:pw@127.0.0.1:1/none")
        run = await cli("provider", "list")
        one_error_line(run)
        assert run.code == 1
        assert "pw" not in run.err
        assert "TOLEM_DATABASE_URL" in run.err
        assert "127.0.0.1:1/none" in run.err

    async def test_bad_setting_names_its_variable(self, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        """A bad TOLEM_* value is reported by its variable name, on one line, exit 2."""
        monkeypatch.setenv("TOLEM_PORT", "eighty")
        run = await cli("provider", "list")
        one_error_line(run)
        assert run.code == 2
        assert "TOLEM_PORT (or --port)" in run.err
        monkeypatch.setenv("TOLEM_PORT", "8080")
        monkeypatch.setenv("TOLEM_TIMEZONE", "Mars/Olympus")
        run = await cli("provider", "list")
        one_error_line(run)
        assert "TOLEM_TIMEZONE" in run.err

    async def test_file_problem_is_not_a_database_error(self, cli: Cli, tmp_path: Path) -> None:
        """A file that cannot be read is reported by its name, not as a database failure."""
        run = await cli("account", "import", str(tmp_path))
        one_error_line(run)
        assert str(tmp_path) in run.err
        assert "database" not in run.err
