"""One database, one currency: the CLI refuses to create what would take money in another one."""

from pathlib import Path

import asyncpg
import pytest

from tests.cli.conftest import Cli, count, one_error_line


async def test_provider_add_refuses_a_database_in_another_currency(
    cli: Cli, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accounts created under UZS, then `provider add` under KGS: refused naming both, nothing added."""
    monkeypatch.setenv("TOLEM_CURRENCY", "UZS")
    assert (await cli("account", "create", "--email", "a@b.uz", "--name", "A")).code == 0
    monkeypatch.setenv("TOLEM_CURRENCY", "KGS")
    refused = await cli("provider", "add", "kiosk", "--protocol", "osmp", "--allow-ip", "10.0.0.0/8")
    one_error_line(refused)
    assert "the database holds UZS" in refused.err
    assert "TOLEM_CURRENCY is KGS" in refused.err
    assert await count(pool, "providers") == 0


async def test_account_create_and_import_refuse_a_database_in_another_currency(
    cli: Cli, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A KGS provider exists; `account create` and `account import` under UZS are refused."""
    assert (await cli("provider", "add", "kiosk", "--protocol", "osmp", "--allow-ip", "10.0.0.0/8")).code == 0
    monkeypatch.setenv("TOLEM_CURRENCY", "UZS")
    refused = await cli("account", "create", "--email", "a@b.uz", "--name", "A")
    one_error_line(refused)
    assert "the database holds KGS" in refused.err
    path = tmp_path / "old.csv"
    path.write_text("payment_code,email,name\n100001,a@old.kg,A\n", encoding="utf-8")
    one_error_line(await cli("account", "import", str(path)))
    assert await count(pool, "accounts") == 0


async def test_provider_in_another_currency_than_the_deployment_is_refused(
    cli: Cli, pool: asyncpg.Pool
) -> None:
    """`provider add --currency UZS` on a KGS deployment is refused: tolem never converts."""
    refused = await cli(
        "provider", "add", "uzpay", "--protocol", "osmp", "--allow-ip", "10.0.0.0/8", "--currency", "UZS"
    )
    one_error_line(refused)
    assert "UZS is not the deployment's currency KGS" in refused.err
    assert "never converts" in refused.err
    stated = await cli(
        "provider",
        "add",
        "kgpay",
        "--protocol",
        "osmp",
        "--allow-ip",
        "10.0.0.0/8",
        "--currency",
        "KGS",
        "--json",
    )
    assert stated.code == 0
    assert stated.json()["currency"] == "KGS"
    one_error_line(
        await cli("provider", "add", "x", "--protocol", "osmp", "--password", "p", "--currency", "som")
    )
    assert await count(pool, "providers") == 1


async def test_provider_set_and_enable_refuse_under_another_currency(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under TOLEM_CURRENCY=UZS a KGS provider cannot be changed or enabled; disabling it still works."""
    assert (await cli("provider", "add", "kiosk", "--protocol", "osmp", "--allow-ip", "10.0.0.0/8")).code == 0
    assert (await cli("provider", "disable", "kiosk")).code == 0
    monkeypatch.setenv("TOLEM_CURRENCY", "UZS")
    refused = await cli("provider", "set", "kiosk", "--max-amount", "100")
    one_error_line(refused)
    assert "provider kiosk takes KGS, TOLEM_CURRENCY is UZS" in refused.err
    one_error_line(await cli("provider", "enable", "kiosk"))
    assert (await cli("provider", "disable", "kiosk")).code == 0
    monkeypatch.setenv("TOLEM_CURRENCY", "KGS")
    assert (await cli("provider", "enable", "kiosk", "--json")).json()["enabled"] is True
