"""The `tolem` command: each command with good and bad input; bad input changes nothing."""

from pathlib import Path

import asyncpg
import pytest

import tolem
from tests.cli.conftest import Cli, Run
from tests.conftest import Factory
from tolem.core.model import PayCommand
from tolem.core.payment_codes import CodeShape, classify
from tolem.core.service import PaymentService


def one_error_line(run: Run) -> None:
    """Bad input: non-zero exit and exactly one line on stderr."""
    assert run.code != 0
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1, run.err
    assert lines[0].startswith("tolem: error: ")


async def count(pool: asyncpg.Pool, table: str) -> int:
    """Rows in a table."""
    async with pool.acquire() as conn:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))


class TestAccounts:
    async def test_create_then_show_zero_balance(self, cli: Cli) -> None:
        """account create prints id and an issued code; account show --code shows balance 0.00."""
        created = await cli(
            "account",
            "create",
            "--email",
            "asan@example.kg",
            "--name",
            "Asanov Asan",
            "--service",
            "example.kg",
            "--json",
        )
        assert created.code == 0
        data = created.json()
        assert classify(data["payment_code"]) is CodeShape.ISSUED
        shown = await cli("account", "show", "--code", data["payment_code"])
        assert shown.code == 0
        assert "balance: 0.00 KGS" in shown.out
        assert data["payment_code"] in shown.out
        as_json = (await cli("account", "show", str(data["account_id"]), "--json")).json()
        assert as_json[0]["balance_minor"] == 0
        assert as_json[0]["services"] == ["example.kg"]

    async def test_create_warns_when_the_email_owns_an_account(self, cli: Cli) -> None:
        """A second account for an email is created with a warning naming the first (also in --json)."""
        first = (await cli("account", "create", "--email", "dup@example.kg", "--name", "A", "--json")).json()
        second = await cli("account", "create", "--email", "DUP@example.kg", "--name", "B", "--json")
        assert second.code == 0
        data = second.json()
        assert data["same_email_accounts"] == [first["account_id"]]
        assert f"account(s) {first['account_id']}" in data["warning"]
        assert second.err.startswith("tolem: warning: ")
        assert len(second.err.strip().splitlines()) == 1
        third = await cli("account", "create", "--email", "solo@example.kg", "--name", "C", "--json")
        assert "warning" not in third.json()
        assert third.err == ""

    async def test_show_states_the_zone_and_currency_of_payments(
        self, cli: Cli, service: PaymentService, factory: Factory
    ) -> None:
        """account show prints payment times in the deployment's zone, named, with amounts' currency."""
        provider = await factory.provider()
        account_id, code = await factory.account()
        await service.pay(provider, PayCommand("t-1", code, 150_50))
        shown = await cli("account", "show", str(account_id))
        assert "last payments (times in Asia/Bishkek):" in shown.out
        line = next(x for x in shown.out.splitlines() if " t-1 " in x)
        assert "+0600" in line
        assert "150.50 KGS" in line

    async def test_lookup_by_email_and_service_is_case_blind(self, cli: Cli) -> None:
        """Support finds the account by email or service name however the caller spells it."""
        data = (
            await cli(
                "account",
                "create",
                "--email",
                "Bek@Example.kg",
                "--name",
                "Bek",
                "--service",
                "Shop.KG",
                "--json",
            )
        ).json()
        by_email = (await cli("account", "show", "--email", "bek@example.KG", "--json")).json()
        by_service = (await cli("account", "show", "--service", "shop.kg", "--json")).json()
        assert by_email[0]["id"] == by_service[0]["id"] == data["account_id"]

    async def test_bad_account_input_changes_nothing(self, cli: Cli, pool: asyncpg.Pool) -> None:
        """Bad email, empty name and over-long service are refused with one line; no rows."""
        for args in (
            ("--email", "not-an-email", "--name", "X"),
            ("--email", "a@b.kg", "--name", "   "),
            ("--email", "a@b.kg", "--name", "X", "--service", "s" * 300),
            ("--email", "a@b.kg"),
        ):
            one_error_line(await cli("account", "create", *args))
        assert await count(pool, "accounts") == 0
        assert await count(pool, "payers") == 0

    async def test_show_needs_exactly_one_key(self, cli: Cli) -> None:
        """show with no key, two keys or an unknown key exits non-zero."""
        one_error_line(await cli("account", "show"))
        one_error_line(await cli("account", "show", "1", "--email", "a@b.kg"))
        one_error_line(await cli("account", "show", "999"))
        one_error_line(await cli("account", "show", "--code", "00;1"))

    async def test_payer_add_gives_a_new_code(self, cli: Cli) -> None:
        """payer add returns a second, different code for the same account."""
        data = (await cli("account", "create", "--email", "a@b.kg", "--name", "A", "--json")).json()
        added = (await cli("payer", "add", str(data["account_id"]), "--name", "Firm LLC", "--json")).json()
        assert added["payment_code"] != data["payment_code"]
        shown = (await cli("account", "show", "--code", added["payment_code"], "--json")).json()
        assert [p["payment_code"] for p in shown[0]["payers"]] == [
            data["payment_code"],
            added["payment_code"],
        ]
        one_error_line(await cli("payer", "add", "424242"))
        one_error_line(await cli("payer", "add", "not-a-number"))

    async def test_block_and_unblock(self, cli: Cli) -> None:
        """Blocking flips the status shown; an unknown account is an error."""
        data = (await cli("account", "create", "--email", "a@b.kg", "--name", "A", "--json")).json()
        account = str(data["account_id"])
        assert (await cli("account", "block", account)).code == 0
        assert (await cli("account", "show", account, "--json")).json()[0]["status"] == "blocked"
        assert (await cli("account", "unblock", account)).code == 0
        assert (await cli("account", "show", account, "--json")).json()[0]["status"] == "active"
        one_error_line(await cli("account", "block", "999999"))


class TestProviders:
    async def test_add_prints_gateway_and_list_hides_secrets(self, cli: Cli) -> None:
        """provider add prints /gw/NAME; list shows that secrets exist, never their values."""
        added = await cli(
            "provider",
            "add",
            "elsom",
            "--protocol",
            "osmp",
            "--allow-ip",
            "10.1.0.0/16",
            "--min-amount",
            "10",
            "--max-amount",
            "50000.00",
        )
        assert added.code == 0
        assert "/gw/elsom" in added.out
        await cli("provider", "add", "pay", "--protocol", "payme", "--password", "s3cr3t-key")
        await cli(
            "provider", "add", "clk", "--protocol", "click", "--secret", "sig-secret", "--service-id", "77"
        )
        listed = await cli("provider", "list", "--json")
        assert "s3cr3t-key" not in listed.out and "sig-secret" not in listed.out
        rows = {row["name"]: row for row in listed.json()}
        assert rows["elsom"]["allow_ips"] == ["10.1.0.0/16"]
        assert (rows["elsom"]["min_amount"], rows["elsom"]["max_amount"]) == ("10.00", "50000.00")
        assert rows["pay"]["password"] is True and rows["clk"]["secret"] is True
        text = await cli("provider", "list")
        assert "s3cr3t-key" not in text.out and "elsom" in text.out

    async def test_bad_provider_input_changes_nothing(self, cli: Cli, pool: asyncpg.Pool) -> None:
        """Every refusal is one line and leaves no provider behind."""
        for args in (
            ("open", "--protocol", "osmp"),
            ("bad", "--protocol", "osmp", "--allow-ip", "10.0.0.300/8"),
            ("bad", "--protocol", "osmp", "--allow-ip", "10.0.0.0/8", "--min-amount", "10.505"),
            ("bad", "--protocol", "osmp", "--allow-ip", "10.0.0.0/8", "--max-amount", "-1"),
            (
                "bad",
                "--protocol",
                "osmp",
                "--allow-ip",
                "10.0.0.0/8",
                "--min-amount",
                "9",
                "--max-amount",
                "5",
            ),
            ("bad", "--protocol", "payme", "--allow-ip", "10.0.0.0/8"),
            ("bad", "--protocol", "click", "--secret", "x"),
            ("bad", "--protocol", "sms", "--password", "x"),
            ("Bad Name", "--protocol", "osmp", "--password", "x"),
            ("bad", "--protocol", "osmp", "--password", "x", "--timezone", "Mars/Olympus"),
        ):
            one_error_line(await cli("provider", "add", *args))
        assert await count(pool, "providers") == 0

    async def test_duplicate_name_refused(self, cli: Cli, pool: asyncpg.Pool) -> None:
        """A second provider of the same name is refused."""
        assert (await cli("provider", "add", "k", "--protocol", "osmp", "--password", "x")).code == 0
        again = await cli("provider", "add", "k", "--protocol", "osmp", "--password", "y")
        one_error_line(again)
        assert "tolem provider set k" in again.err
        assert await count(pool, "providers") == 1

    async def test_set_clears_limits_and_the_allow_list(self, cli: Cli) -> None:
        """set --clear empties a limit, the zone or the allow-list; clearing the only guard is refused."""
        await cli(
            "provider", "add", "k", "--protocol", "osmp", "--allow-ip", "10.0.0.0/8", "--password", "x",
            "--min-amount", "5", "--max-amount", "100", "--timezone", "Asia/Tashkent",
        )  # fmt: skip
        cleared = await cli(
            "provider", "set", "k", "--clear", "min-amount", "--clear", "max-amount", "--clear", "timezone",
            "--json",
        )  # fmt: skip
        assert cleared.code == 0, cleared.err
        data = cleared.json()
        assert (data["min_amount"], data["max_amount"], data["timezone"]) == (None, None, None)
        opened = (await cli("provider", "set", "k", "--clear", "allow-ip", "--json")).json()
        assert opened["allow_ips"] == []
        await cli("provider", "add", "ip-only", "--protocol", "osmp", "--allow-ip", "10.0.0.0/8")
        refused = await cli("provider", "set", "ip-only", "--clear", "allow-ip")
        one_error_line(refused)
        assert "--password or --secret" in refused.err
        both = await cli("provider", "set", "k", "--clear", "max-amount", "--max-amount", "7")
        one_error_line(both)
        listed = {row["name"]: row for row in (await cli("provider", "list", "--json")).json()}
        assert listed["ip-only"]["allow_ips"] == ["10.0.0.0/8"]
        assert listed["k"]["max_amount"] is None

    async def test_remove_only_a_provider_without_history(
        self, cli: Cli, pool: asyncpg.Pool, service: PaymentService, factory: Factory
    ) -> None:
        """remove deletes a provider nobody called, with its clearing account; one that was paid stays."""
        await cli("provider", "add", "typo", "--protocol", "osmp", "--allow-ip", "10.0.0.0/8")
        ledgers = await count(pool, "ledger_accounts")
        removed = await cli("provider", "remove", "typo", "--json")
        assert removed.code == 0, removed.err
        assert removed.json() == {"name": "typo", "removed": True}
        assert await count(pool, "providers") == 0
        assert await count(pool, "ledger_accounts") == ledgers - 1
        one_error_line(await cli("provider", "remove", "typo"))
        await cli("provider", "add", "asked", "--protocol", "osmp", "--allow-ip", "10.0.0.0/8")
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO request_journal (received_at, provider, method, command, http_status,"
                " duration_us) VALUES (now(), 'asked', 'GET', 'check', 200, 1000)"
            )
        asked = await cli("provider", "remove", "asked")
        one_error_line(asked)
        assert "1 journaled call(s)" in asked.err
        provider = await factory.provider("kiosk")
        _, code = await factory.account()
        await service.pay(provider, PayCommand("t-1", code, 10_00))
        kept = await cli("provider", "remove", "kiosk")
        one_error_line(kept)
        assert "1 payment(s)" in kept.err
        assert "tolem provider disable kiosk" in kept.err
        assert await count(pool, "providers") == 2

    async def test_set_disable_enable(self, cli: Cli) -> None:
        """set changes limits; disable and enable flip the flag; unknown names are errors."""
        await cli("provider", "add", "k", "--protocol", "osmp", "--allow-ip", "10.0.0.0/8")
        changed = (await cli("provider", "set", "k", "--max-amount", "100", "--json")).json()
        assert changed["max_amount"] == "100.00"
        assert (await cli("provider", "disable", "k", "--json")).json()["enabled"] is False
        assert (await cli("provider", "enable", "k", "--json")).json()["enabled"] is True
        one_error_line(await cli("provider", "set", "k"))
        one_error_line(await cli("provider", "set", "k", "--allow-ip", "0/0/0"))
        one_error_line(await cli("provider", "disable", "nobody"))
        one_error_line(await cli("provider", "set", "nobody", "--max-amount", "1"))


class TestImport:
    CSV = (
        "payment_code,email,name,account_ref,services,status\n"
        "100001,a@old.kg,Asanov Asan,A1,a.kg;b.kg,active\n"
        "100002,a@old.kg,Asanova Aida,A1,,active\n"
        "100003,c@old.kg,Chubakov Chyngyz,,c.kg,blocked\n"
        "bad code!,d@old.kg,D,,,active\n"
        "100005,no-email,E,,,active\n"
        "100006,f@old.kg,F,,,frozen\n"
        "001234567890,g@old.kg,G,,,active\n"
    )

    async def test_import_reports_and_is_idempotent(self, cli: Cli, tmp_path: Path) -> None:
        """Rows create accounts (shared by account_ref), refusals name their line; re-import skips."""
        path = tmp_path / "old.csv"
        path.write_text(self.CSV, encoding="utf-8")
        first = (await cli("account", "import", str(path), "--json")).json()
        assert (first["created"], first["skipped"]) == (3, 0)
        assert [r["line"] for r in first["refused"]] == [5, 6, 7, 8]
        second = (await cli("account", "import", str(path), "--json")).json()
        assert (second["created"], second["skipped"], len(second["refused"])) == (0, 3, 4)
        shared = (await cli("account", "show", "--code", "100002", "--json")).json()[0]
        assert [p["payment_code"] for p in shared["payers"]] == ["100001", "100002"]
        assert shared["services"] == ["a.kg", "b.kg"]
        blocked = (await cli("account", "show", "--code", "100003", "--json")).json()[0]
        assert blocked["status"] == "blocked"
        text = await cli("account", "import", str(path))
        assert "line 8:" in text.out

    async def test_import_refuses_bad_files(self, cli: Cli, tmp_path: Path, pool: asyncpg.Pool) -> None:
        """Missing file, non-UTF-8 and a header without required columns are one-line errors."""
        one_error_line(await cli("account", "import", str(tmp_path / "missing.csv")))
        latin = tmp_path / "latin.csv"
        latin.write_bytes("payment_code,email,name\n1,a@b.kg,Ásan\n".encode("latin-1"))
        one_error_line(await cli("account", "import", str(latin)))
        headless = tmp_path / "headless.csv"
        headless.write_text("code,mail\n1,a@b.kg\n")
        one_error_line(await cli("account", "import", str(headless)))
        assert await count(pool, "accounts") == 0


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
