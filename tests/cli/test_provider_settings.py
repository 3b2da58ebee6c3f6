"""Dangerous provider settings are refused; secrets need not pass through the command line."""

import io

import asyncpg
import pytest

from tests.cli.conftest import Cli, count, one_error_line
from tolem.protocols.passwords import verify_password


async def _stored(pool: asyncpg.Pool, name: str) -> asyncpg.Record:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT allow_ips::text[] AS allow_ips, password_hash, secret FROM providers WHERE name = $1",
            name,
        )
    assert row is not None
    return row


class TestAllowList:
    @pytest.mark.parametrize(
        ("typed", "meant"),
        [
            ("10.0.0.1/8", "10.0.0.0/8"),
            ("192.168.1.77/24", "192.168.1.0/24"),
            ("2001:db8::1/32", "2001:db8::/32"),
        ],
    )
    async def test_network_with_host_bits_is_refused_naming_what_it_would_mean(
        self, cli: Cli, pool: asyncpg.Pool, typed: str, meant: str
    ) -> None:
        """`--allow-ip 10.0.0.1/8` is an error that names 10.0.0.0/8, on add and on set alike."""
        refused = await cli(
            "provider", "add", "k", "--protocol", "osmp", "--password", "pw", "--allow-ip", typed
        )
        one_error_line(refused)
        assert f"{typed} has host bits set" in refused.err
        assert f"it would mean {meant}" in refused.err
        assert await count(pool, "providers") == 0
        assert (await cli("provider", "add", "k", "--protocol", "osmp", "--allow-ip", meant)).code == 0
        one_error_line(await cli("provider", "set", "k", "--allow-ip", typed))
        assert (await _stored(pool, "k"))["allow_ips"] == [meant]

    async def test_single_addresses_are_host_networks(self, cli: Cli, pool: asyncpg.Pool) -> None:
        """A bare address is that one host (/32, /128), not an error."""
        added = await cli(
            "provider", "add", "k", "--protocol", "osmp", "--allow-ip", "10.0.0.1", "--allow-ip", "::1"
        )
        assert added.code == 0
        assert (await _stored(pool, "k"))["allow_ips"] == ["10.0.0.1/32", "::1/128"]

    @pytest.mark.parametrize("wide", ["0.0.0.0/0", "10.0.0.0/7", "::/0", "2000::/3", "2001:db8::/31"])
    async def test_wide_allow_list_without_credentials_is_refused(
        self, cli: Cli, pool: asyncpg.Pool, wide: str
    ) -> None:
        """A network wider than /8 (IPv6 /32) lets almost anyone call: without credentials it is refused."""
        refused = await cli("provider", "add", "k", "--protocol", "osmp", "--allow-ip", wide)
        one_error_line(refused)
        assert f"{wide} is wider than" in refused.err
        assert "--password" in refused.err
        assert await count(pool, "providers") == 0
        assert (
            await cli("provider", "add", "k", "--protocol", "osmp", "--allow-ip", wide, "--password", "pw")
        ).code == 0

    async def test_widening_a_provider_without_credentials_is_refused(
        self, cli: Cli, pool: asyncpg.Pool
    ) -> None:
        """/8 and IPv6 /32 need no credentials; `provider set` to 0.0.0.0/0 on such a provider is refused."""
        assert (
            await cli(
                "provider",
                "add",
                "k",
                "--protocol",
                "osmp",
                "--allow-ip",
                "10.0.0.0/8",
                "--allow-ip",
                "2001:db8::/32",
            )
        ).code == 0
        one_error_line(await cli("provider", "set", "k", "--allow-ip", "0.0.0.0/0"))
        assert (await _stored(pool, "k"))["allow_ips"] == ["10.0.0.0/8", "2001:db8::/32"]
        assert (await cli("provider", "set", "k", "--allow-ip", "0.0.0.0/0", "--password", "pw")).code == 0


class TestSecretSources:
    async def test_password_and_secret_from_stdin(
        self, cli: Cli, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`--password-stdin` and `--secret-stdin` read stdin's first line; stored, never printed."""
        monkeypatch.setattr("sys.stdin", io.StringIO("Zx8#kQ2mP9vL4nR7 tY1w\n"))
        added = await cli("provider", "add", "pay", "--protocol", "payme", "--password-stdin", "--json")
        assert added.code == 0
        assert "Zx8#" not in added.out + added.err
        assert verify_password("Zx8#kQ2mP9vL4nR7 tY1w", (await _stored(pool, "pay"))["password_hash"])
        monkeypatch.setattr("sys.stdin", io.StringIO("click-sig-key\r\n"))
        clicked = await cli(
            "provider", "add", "clk", "--protocol", "click", "--service-id", "7", "--secret-stdin"
        )
        assert clicked.code == 0
        assert (await _stored(pool, "clk"))["secret"] == "click-sig-key"

    async def test_password_and_secret_from_the_environment(
        self, cli: Cli, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`--password-env VAR` and `--secret-env VAR` take the value of VAR; an unset VAR is an error."""
        monkeypatch.setenv("PAYME_KEY", "env-key-123")
        monkeypatch.setenv("CLICK_KEY", "env-secret-456")
        assert (
            await cli("provider", "add", "pay", "--protocol", "payme", "--password-env", "PAYME_KEY")
        ).code == 0
        assert verify_password("env-key-123", (await _stored(pool, "pay"))["password_hash"])
        assert (await cli("provider", "set", "pay", "--password-env", "CLICK_KEY")).code == 0
        assert verify_password("env-secret-456", (await _stored(pool, "pay"))["password_hash"])
        added = await cli(
            "provider", "add", "clk", "--protocol", "click", "--service-id", "7", "--secret-env", "CLICK_KEY"
        )
        assert added.code == 0
        assert (await _stored(pool, "clk"))["secret"] == "env-secret-456"
        unset = await cli("provider", "add", "x", "--protocol", "payme", "--password-env", "NO_SUCH_VARIABLE")
        one_error_line(unset)
        assert "NO_SUCH_VARIABLE is not set" in unset.err
        assert await count(pool, "providers") == 2

    async def test_ambiguous_or_empty_sources_are_refused(
        self, cli: Cli, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two sources for one secret, stdin for both, or an empty stdin: one-line errors, nothing added."""
        monkeypatch.setenv("PAYME_KEY", "k")
        monkeypatch.setattr("sys.stdin", io.StringIO("k\n"))
        for args in (
            ("--password", "k", "--password-stdin"),
            ("--password-env", "PAYME_KEY", "--password-stdin"),
            ("--password-stdin", "--secret-stdin"),
        ):
            one_error_line(await cli("provider", "add", "pay", "--protocol", "payme", *args))
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        empty = await cli("provider", "add", "pay", "--protocol", "payme", "--password-stdin")
        one_error_line(empty)
        assert "stdin" in empty.err
        assert await count(pool, "providers") == 0

    async def test_help_names_every_source(self, cli: Cli) -> None:
        """`provider add --help` documents stdin and the environment as ways to pass secrets."""
        shown = await cli("provider", "add", "--help")
        assert shown.code == 0
        for option in ("--password-stdin", "--password-env", "--secret-stdin", "--secret-env"):
            assert option in shown.out
