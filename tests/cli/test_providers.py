"""`tolem provider …`: each command with good and bad input; bad input changes nothing."""

import asyncpg

from tests.cli.conftest import Cli, count, one_error_line
from tests.conftest import Factory
from tolem.core.model import PayCommand
from tolem.core.service import PaymentService


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
