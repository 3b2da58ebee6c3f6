"""`tolem reconcile`, `tolem payments export` and `tolem report daily` through the real entry point."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from tests.cli.conftest import Cli, count, one_error_line
from tests.conftest import Factory
from tolem.core.model import PayCommand, Provider
from tolem.core.service import PaymentService

BISHKEK = ZoneInfo("Asia/Bishkek")


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A Bishkek time of November 2026."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=BISHKEK)


def qiwi_file(path: Path, rows: list[tuple[str, datetime, str, int]]) -> Path:
    """Writes a QIWI registry of (txn, time, code, minor units) rows with its Total line."""
    lines = [
        f"{t}\t{w.astimezone(BISHKEK):%d.%m.%Y\t%H:%M:%S}\t{c}\t{a // 100}.{a % 100:02d}"
        for t, w, c, a in rows
    ]
    total = sum(a for *_, a in rows)
    lines.append(f"Total: {len(rows)} {total // 100}.{total % 100:02d}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def pay(
    service: PaymentService, provider: Provider, txn: str, code: str, amount: int, when: datetime
) -> None:
    """A credited payment stamped `when` by the aggregator."""
    await service.pay(provider, PayCommand(txn, code, amount, provider_time=when, provider_time_raw="t"))


class TestReconcile:
    async def test_do_we_agree_with_pay24_about_yesterday(
        self, cli: Cli, factory: Factory, service: PaymentService, tmp_path: Path
    ) -> None:
        """One command answers: their count and sum, ours, and exactly the payments that differ."""
        provider = await factory.provider("pay24")
        codes = [(await factory.account())[1] for _ in range(5)]
        theirs: list[tuple[str, datetime, str, int]] = []
        for n in range(60):
            when = local(25, 0, 0, 0) + timedelta(minutes=24 * n)
            code, amount = codes[n % 5], 100_00 + n * 17
            theirs.append((str(1000 + n), when, code, amount))
            if n == 13:
                continue  # they paid it, we never heard of it
            await pay(service, provider, str(1000 + n), code, amount - (50 if n == 21 else 0), when)
        await pay(service, provider, "2000", codes[0], 5_00, local(25, 23, 59, 59))  # ours only
        path = qiwi_file(tmp_path / "pay24_20261125.txt", theirs)

        run = await cli("reconcile", "pay24", str(path), "--json")
        assert run.code == 1
        report = run.json()
        total = sum(a for *_, a in theirs)
        assert (report["provider"], report["day"], report["zone"], report["currency"]) == (
            "pay24",
            "2026-11-25",
            "Asia/Bishkek",
            "KGS",
        )
        assert report["theirs"]["count"] == 60
        assert report["theirs"]["total_minor"] == total
        assert report["ours"]["count"] == 60
        assert report["ours"]["total_minor"] == total - theirs[13][3] - 50 + 5_00
        assert report["agree"] is False
        assert {(d["kind"], d["txn"]) for d in report["differences"]} == {
            ("missing_ours", "1013"),
            ("amount_mismatch", "1021"),
            ("missing_theirs", "2000"),
        }
        amount_row = next(d for d in report["differences"] if d["kind"] == "amount_mismatch")
        assert (amount_row["theirs_amount"], amount_row["ours_amount"]) == ("103.57", "103.07")

        text = await cli("reconcile", "pay24", str(path))
        assert text.code == 1
        assert "theirs: 60 paid" in text.out
        assert "(Total line: 60," in text.out
        assert "differ: 3 difference(s), 0 new" in text.out
        assert "txn 1013" in text.out and "missing_ours" in text.out

    async def test_a_malformed_file_is_refused_whole_with_line_numbers(
        self, cli: Cli, factory: Factory, pool: asyncpg.Pool, tmp_path: Path
    ) -> None:
        """Bad lines: exit 2, one stderr line naming them, and nothing stored at all."""
        await factory.provider("pay24")
        _, code = await factory.account()
        path = tmp_path / "bad.txt"
        path.write_text(
            f"1\t25.11.2026\t10:00:00\t{code}\t1.00\n2\t25.11.2026\t10:00:00\t{code}\t1.0.0\n"
            f"3\t25.11.2026\t25:00:00\t{code}\t1.00\nTotal: 3 3.00\n",
            encoding="utf-8",
        )
        run = await cli("reconcile", "pay24", str(path))
        one_error_line(run)
        assert run.code == 2
        assert "bad.txt refused (2 problem(s)), nothing stored" in run.err
        assert "line 2:" in run.err and "line 3:" in run.err
        as_json = await cli("reconcile", "pay24", str(path), "--json")
        assert [p["where"] for p in as_json.json()["problems"]] == ["line 2", "line 3"]
        for table in ("registries", "registry_lines", "discrepancies"):
            assert await count(pool, table) == 0

    async def test_reimport_resolve_and_credit(
        self, cli: Cli, factory: Factory, service: PaymentService, pool: asyncpg.Pool, tmp_path: Path
    ) -> None:
        """Re-importing changes nothing; credit pays the missing one once and resolves it; resolve
        records the operator; afterwards the registry agrees except for what was resolved."""
        provider = await factory.provider("pay24")
        account_id, code = await factory.account()
        await pay(service, provider, "1", code, 1_00, local(25, 9))
        path = qiwi_file(
            tmp_path / "r.txt", [("1", local(25, 9), code, 1_50), ("2", local(25, 10), code, 2_00)]
        )
        first = (await cli("reconcile", "pay24", str(path), "--json")).json()
        assert first["registry"]["stored_now"] is True
        again = await cli("reconcile", "pay24", str(path), "--json")
        assert again.json()["registry"]["stored_now"] is False
        assert all(not d["new"] for d in again.json()["differences"])
        assert await count(pool, "registry_lines") == 2
        assert await count(pool, "discrepancies") == 2
        ids = {d["kind"]: d["discrepancy_id"] for d in first["differences"]}

        listed = await cli("reconcile", "list", "--json")
        assert {d["id"] for d in listed.json()} == set(ids.values())
        credited = await cli("reconcile", "credit", str(ids["missing_ours"]), "--operator", "alice", "--json")
        assert credited.code == 0, credited.err
        assert credited.json()["credited"] is True
        twice = await cli("reconcile", "credit", str(ids["missing_ours"]))
        one_error_line(twice)
        assert "already resolved by alice" in twice.err
        assert await factory.balance(account_id) == 3_00
        wrong = await cli("reconcile", "credit", str(ids["amount_mismatch"]))
        one_error_line(wrong)
        assert "only missing_ours can be credited" in wrong.err
        resolved = await cli(
            "reconcile",
            "resolve",
            str(ids["amount_mismatch"]),
            "--note",
            "Pay24 agrees: 1.00",
            "--operator",
            "bob",
        )
        assert resolved.code == 0, resolved.err
        assert "resolved by bob" in resolved.out
        assert (await cli("reconcile", "list")).out.strip() == "no open discrepancies"
        assert len((await cli("reconcile", "list", "--all", "--json")).json()) == 2
        after = await cli("reconcile", "pay24", str(path), "--json")
        assert after.code == 1  # the amount still differs, now resolved
        assert [(d["kind"], d["open"]) for d in after.json()["differences"]] == [("amount_mismatch", False)]

    async def test_another_file_for_the_day_needs_supersede(
        self, cli: Cli, factory: Factory, tmp_path: Path
    ) -> None:
        """A second, different file for the same day is refused with the way out named."""
        await factory.provider("pay24")
        _, code = await factory.account()
        one = qiwi_file(tmp_path / "one.txt", [("1", local(25, 9), code, 1_00)])
        two = qiwi_file(
            tmp_path / "two.txt", [("1", local(25, 9), code, 1_00), ("2", local(25, 9), code, 1_00)]
        )
        await cli("reconcile", "pay24", str(one))
        refused = await cli("reconcile", "pay24", str(two))
        one_error_line(refused)
        assert "already has registry" in refused.err and "--supersede" in refused.err
        stored = await cli("reconcile", "pay24", str(two), "--supersede", "--json")
        assert stored.json()["registry"]["revision"] == 2

    async def test_csv_and_payme_registries(
        self, cli: Cli, factory: Factory, service: PaymentService, tmp_path: Path
    ) -> None:
        """A generic CSV through --map (a cancelled line we lack agrees), and a Payme statement."""
        osmp = await factory.provider("optima")
        payme = await factory.provider("payme", protocol="payme", password="k")
        _, code = await factory.account()
        await pay(service, osmp, "5", code, 5_00, local(25, 9))
        await pay(service, payme, "65f0c2a1b7e4d93a1c2f8e10", code, 9_00, local(25, 9))
        sheet = tmp_path / "optima.csv"
        sheet.write_text(
            "Id;When;Account;Amount;Status\n"
            f"5;25.11.2026 09:00:00;{code};5.00;OK\n6;25.11.2026 10:00:00;{code};6.00;CANCELLED\n",
            encoding="utf-8",
        )
        mapped = [
            "--format", "csv", "--delimiter", "semicolon", "--time-format", "%d.%m.%Y %H:%M:%S",
            "--map", "txn=Id", "--map", "time=When", "--map", "code=Account", "--map", "amount=Amount",
            "--map", "state=Status",
        ]  # fmt: skip
        run = await cli("reconcile", "optima", str(sheet), *mapped, "--json")
        assert run.code == 0, run.out + run.err
        assert run.json()["theirs"] == {"count": 1, "total_minor": 5_00, "total": "5.00", "not_paid": 1}
        bad_map = await cli("reconcile", "optima", str(sheet), "--format", "csv", "--map", "txn")
        one_error_line(bad_map)
        statement = tmp_path / "payme.json"
        moment = int(local(25, 9).timestamp() * 1000)
        item = {"id": "65f0c2a1b7e4d93a1c2f8e10", "time": moment, "amount": 9_00, "account": {"code": code}}
        statement.write_text(
            json.dumps({"result": {"transactions": [{**item, "state": -2}]}}), encoding="utf-8"
        )
        run = await cli("reconcile", "payme", str(statement), "--json")
        assert run.code == 1
        [difference] = run.json()["differences"]
        assert (difference["kind"], difference["theirs_state"], difference["ours_state"]) == (
            "state_mismatch",
            "cancelled",
            "credited",
        )

    async def test_bad_invocations(self, cli: Cli, factory: Factory, tmp_path: Path) -> None:
        """Unknown provider, missing file, an unguessable day: one error line each, nothing stored."""
        await factory.provider("click", protocol="click", secret="s", service_id="1")
        empty = tmp_path / "empty.txt"
        empty.write_text("Total: 0 0.00\n", encoding="utf-8")
        for args in (
            ("reconcile", "nobody", str(empty)),
            ("reconcile", "click", str(tmp_path / "absent.txt")),
            ("reconcile", "click", str(empty)),
            ("reconcile", "resolve", "5"),
            ("reconcile", "resolve", "5", "--note", "x"),
        ):
            one_error_line(await cli(*args))
        await factory.provider("pay24")
        no_day = await cli("reconcile", "pay24", str(empty))
        one_error_line(no_day)
        assert "--day" in no_day.err
        ok = await cli("reconcile", "run", "pay24", str(empty), "--day", "2026-11-25")
        assert ok.code == 0, ok.err
        assert "agree" in ok.out


class TestExportAndReport:
    async def test_export_lists_the_day_in_the_provider_zone(
        self, cli: Cli, factory: Factory, service: PaymentService
    ) -> None:
        """A day runs midnight to midnight in the provider's zone, which the CSV header names."""
        provider = await factory.provider("pay24")
        _, code = await factory.account()
        await pay(service, provider, "1", code, 1_00, local(24, 23, 59, 59))
        await pay(service, provider, "2", code, 2_00, local(25, 0, 0, 0))
        await pay(service, provider, "3", code, 3_00, local(25, 23, 59, 59))
        await pay(service, provider, "4", code, 4_00, local(26, 0, 0, 0))
        await service.cancel(provider, external_id="3")
        run = await cli("payments", "export", "--provider", "pay24", "--day", "2026-11-25")
        assert run.code == 0, run.err
        table = list(csv.DictReader(io.StringIO(run.out)))
        assert [(r["txn"], r["amount"], r["state"]) for r in table] == [
            ("2", "2.00", "credited"),
            ("3", "3.00", "reversed"),
        ]
        assert table[1]["time (Asia/Bishkek)"] == "2026-11-25T23:59:59+06:00"
        assert table[1]["cancelled_at (Asia/Bishkek)"].endswith("+06:00")
        as_json = (
            await cli("payments", "export", "--provider", "pay24", "--day", "2026-11-25", "--json")
        ).json()
        assert (as_json["zone"], as_json["count"]) == ("Asia/Bishkek", 2)
        await factory.provider("qiwi", timezone="UTC")
        for bad in (
            ("--provider", "nobody", "--day", "2026-11-25"),
            ("--provider", "pay24", "--day", "25.11.2026"),
        ):
            one_error_line(await cli("payments", "export", *bad))

    async def test_daily_totals_come_from_the_ledger_in_each_provider_zone(
        self, cli: Cli, factory: Factory, service: PaymentService
    ) -> None:
        """Credits, reversals and voids of now land on each provider's own date (UTC+14 and UTC-11
        are always on different dates); each movement is counted once with its currency."""
        east = await factory.provider("east", protocol="payme", password="k", timezone="Pacific/Kiritimati")
        west = await factory.provider("west", timezone="Pacific/Pago_Pago")
        _, code = await factory.account()
        for provider in (east, west):
            await service.pay(provider, PayCommand("1", code, 10_00))
            await service.pay(provider, PayCommand("2", code, 20_00))
            await service.cancel(provider, external_id="2")
        await service.reserve(east, PayCommand("3", code, 30_00))
        await service.cancel(east, external_id="3")
        now = datetime.now(UTC)
        east_day = now.astimezone(ZoneInfo("Pacific/Kiritimati")).date()
        west_day = now.astimezone(ZoneInfo("Pacific/Pago_Pago")).date()
        assert east_day != west_day
        first, last = min(east_day, west_day), max(east_day, west_day)
        run = await cli("report", "daily", "--from", first.isoformat(), "--to", last.isoformat(), "--json")
        assert run.code == 0, run.err
        days = {(d["provider"], d["day"]): d for d in run.json()["days"]}
        assert set(days) == {(p, d.isoformat()) for p in ("east", "west") for d in (first, last)}
        busy = days[("east", east_day.isoformat())]
        assert (
            busy["credited_count"],
            busy["credited_minor"],
            busy["reversed_count"],
            busy["reversed_minor"],
        ) == (
            2,
            30_00,
            1,
            20_00,
        )
        assert (busy["voided_count"], busy["voided_minor"], busy["net_amount"], busy["currency"]) == (
            1,
            30_00,
            "10.00",
            "KGS",
        )
        assert days[("west", west_day.isoformat())]["credited_count"] == 2
        assert days[("west", east_day.isoformat())]["credited_count"] == 0
        text = await cli("report", "daily", "--provider", "west", "--from", west_day.isoformat())
        assert "Pacific/Pago_Pago" in text.out and "30.00" in text.out
        one_error_line(await cli("report", "daily", "--from", "2026-11-25", "--to", "2026-11-20"))
        one_error_line(await cli("report", "daily", "--provider", "nobody"))
