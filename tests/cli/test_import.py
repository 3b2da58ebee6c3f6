"""`tolem account import` is strict: every row is imported, listed as a true re-import, or refused."""

from pathlib import Path

import asyncpg

from tests.cli.conftest import Cli, count, one_error_line


def _csv(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


async def test_row_with_more_or_fewer_fields_than_the_header_is_refused(
    cli: Cli, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """A row of 4 or 2 fields under a 3-field header is refused with its line; the exit status says so."""
    path = _csv(
        tmp_path,
        "ragged.csv",
        "payment_code,email,name\n"
        "100001,a@old.kg,Asanov Asan\n"
        "100002,b@old.kg,Bekov Bek,extra\n"
        "100003,c@old.kg\n",
    )
    run = await cli("account", "import", path, "--json")
    assert run.code == 1
    report = run.json()
    assert report["created"] == 1
    assert report["refused"] == [
        {"line": 3, "reason": "4 fields where the header has 3"},
        {"line": 4, "reason": "2 fields where the header has 3"},
    ]
    assert await count(pool, "accounts") == 1
    text = await cli("account", "import", path)
    assert text.code == 1
    assert "  line 3: 4 fields where the header has 3" in text.out


async def test_code_of_another_account_collides_and_a_true_reimport_is_listed(
    cli: Cli, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """A known code under another email or account_ref is refused naming its account; the rows
    that describe the code's own account are skipped, each listed."""
    first = _csv(
        tmp_path,
        "first.csv",
        "payment_code,email,name,account_ref\n100001,a@old.kg,Asanov Asan,\n100002,b@old.kg,Bekov Bek,B1\n",
    )
    created = await cli("account", "import", first, "--json")
    assert (created.code, created.json()["created"]) == (0, 2)
    owner_a = (await cli("account", "show", "--code", "100001", "--json")).json()[0]["id"]
    owner_b = (await cli("account", "show", "--code", "100002", "--json")).json()[0]["id"]

    second = _csv(
        tmp_path,
        "second.csv",
        "payment_code,email,name,account_ref\n"
        "100001,A@old.kg,Asanov Asan,\n"
        "100002,b@old.kg,Bekov Bek,B1\n"
        "100001,z@other.kg,Someone Else,\n"
        "100002,b@old.kg,Bekov Bek,B2\n",
    )
    run = await cli("account", "import", second, "--json")
    assert run.code == 1
    report = run.json()
    assert (report["created"], report["skipped"]) == (0, 2)
    assert report["skipped_rows"] == [{"line": 2, "account_id": owner_a}, {"line": 3, "account_id": owner_b}]
    assert report["refused"] == [
        {"line": 4, "reason": f"payment code collides with account {owner_a}"},
        {"line": 5, "reason": f"payment code collides with account {owner_b}"},
    ]
    text = await cli("account", "import", second)
    assert f"  line 2: already imported into account {owner_a}" in text.out
    assert f"  line 4: payment code collides with account {owner_a}" in text.out
    assert await count(pool, "accounts") == 2
    assert await count(pool, "payers") == 2


async def test_issued_code_of_an_existing_account_collides(cli: Cli, tmp_path: Path) -> None:
    """A row carrying the code `account create` issued to someone else is a collision, not a skip."""
    made = (await cli("account", "create", "--email", "own@example.kg", "--name", "Owner", "--json")).json()
    path = _csv(tmp_path, "taken.csv", f"payment_code,email,name\n{made['payment_code']},x@old.kg,X\n")
    run = await cli("account", "import", path, "--json")
    assert run.code == 1
    assert run.json()["refused"] == [
        {"line": 2, "reason": f"payment code collides with account {made['account_id']}"}
    ]


async def test_clean_import_exits_zero_and_unknown_columns_are_refused(
    cli: Cli, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    """An import that refuses nothing exits 0, a re-import too; a misspelt column stops the import."""
    path = _csv(tmp_path, "ok.csv", "payment_code,email,name\n100001,a@old.kg,A\n")
    assert (await cli("account", "import", path)).code == 0
    again = await cli("account", "import", path, "--json")
    assert (again.code, again.json()["skipped"]) == (0, 1)
    typo = _csv(tmp_path, "typo.csv", "payment_code,email,name,acount_ref\n100009,a@old.kg,A,R1\n")
    refused = await cli("account", "import", typo)
    assert refused.code == 2
    assert "unknown column(s): acount_ref" in refused.err
    twice = _csv(tmp_path, "twice.csv", "payment_code,email,name,email\n100009,a@old.kg,A,b@old.kg\n")
    assert "more than once: email" in (await cli("account", "import", twice)).err
    assert await count(pool, "accounts") == 1


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
