"""The benchmark end to end at a tiny size: it runs, and what it prints is sane and structured.

Figures are not judged (a benchmark's numbers belong to the machine); only that every
measurement happened, nothing failed, and the ledger is sound after the load.
"""

import json
import os
import shutil

import pytest

from bench import instructions
from bench.run import main
from tests.deployment.conftest import need

pytestmark = pytest.mark.slow


@pytest.fixture
def wrk() -> None:
    """wrk is installed (CI installs it; elsewhere the test is skipped without it)."""
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("wrk is missing: .ci/run must install it")
        pytest.skip("wrk is not installed (apt-get install wrk)")


def test_bench_prints_structured_figures(
    wrk: None, server_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A one-second run of check and pay prints one JSON object per measurement, all sane."""
    argv = ["--duration", "1", "--connections", "4", "--accounts", "20", "--dsn", server_dsn, "--json"]
    status = main([*argv, "--scenario", "check", "--scenario", "pay"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    figures = [line for line in lines if "target" in line]
    assert status == 0
    assert lines[-1] == {"audit_violations": []}
    assert {(f["scenario"], f["target"]) for f in figures} == {
        ("check", "bare osmp check"),
        ("check", "tolem osmp check"),
        ("check", "bare check"),
        ("check", "tolem payme check"),
        ("pay", "bare osmp pay"),
        ("pay", "tolem osmp pay"),
        ("pay", "bare reserve+perform"),
        ("pay", "tolem payme pair"),
    }
    for f in figures:
        assert f["requests"] > 0
        assert f["errors"] == 0, f["error_sample"]
        assert 0 < f["p50_ms"] <= f["p99_ms"]
        assert f["cpu_server"] > 0
        assert f["rss_mb"] > 0
    for f in figures:
        if f["scenario"] == "pay":
            assert f["payments_per_s"] > 0
        if f["target"].startswith("tolem"):
            assert f["ratio"] > 0
            assert f["ratio_to"].startswith("bare")


def test_bench_measures_the_prior_database_in_the_same_rounds(
    wrk: None, server_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --prior, check and pay are also measured against a database holding that many
    payments, with ratios to its own bare server and a same-run flatness figure."""
    argv = ["--duration", "1", "--connections", "4", "--accounts", "20", "--dsn", server_dsn, "--json"]
    status = main([*argv, "--prior", "300", "--protocol", "osmp", "--scenario", "check", "--scenario", "pay"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    figures = {(f["scenario"], f["target"]): f for f in lines if "target" in f}
    assert status == 0
    assert lines[-1] == {"audit_violations": []}
    assert set(figures) == {
        (scenario + group, f"{server} osmp {mode}")
        for scenario, mode in (("check", "check"), ("pay", "pay"))
        for group in ("", "@300")
        for server in ("bare", "tolem")
    }
    for (scenario, target), f in figures.items():
        assert f["errors"] == 0, f["error_sample"]
        if scenario.endswith("@300"):
            assert f["stored_payments"] >= 300
            assert any(note.endswith("x the empty-database figure (same rounds)") for note in f["notes"])
            if target.startswith("tolem"):
                assert f["ratio_to"] == target.replace("tolem", "bare")
    # Checks store nothing: the first database is still empty when they are measured.
    assert figures[("check", "tolem osmp check")]["stored_payments"] == 0


def test_instruction_counts_cover_both_servers(
    wrk: None, server_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A short callgrind count of the check prints instructions per request for the bare
    server and for tolem, with tolem's ratio, and no request failed."""
    if shutil.which("valgrind") is None:
        if os.environ.get("CI"):
            pytest.fail("valgrind is missing: .ci/run must install it")
        pytest.skip("valgrind is not installed (apt-get install valgrind)")
    # Counting starts slow (callgrind translates the code again): a second may answer nothing.
    status = instructions.main(["--seconds", "8", "--scenario", "check", "--dsn", server_dsn])
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("check ")]
    assert status == 0
    assert [row[1] for row in rows] == ["bare", "tolem"]
    for row in rows:
        assert int(row[2]) > 0 and int(row[3]) == 0
        assert float(row[4]) > 0
    assert float(rows[1][5]) > 0


def test_bench_through_pgbouncer_prints_one_and_two_instances(
    wrk: None, server_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--pgbouncer adds tolem through PgBouncer, alone and as two instances behind HAProxy,
    each measured without errors beside the bare reference and compared with the one before."""
    need("pgbouncer", "haproxy")
    argv = ["--duration", "1", "--connections", "4", "--accounts", "20", "--dsn", server_dsn, "--json"]
    status = main([*argv, "--scenario", "pay", "--protocol", "osmp", "--pgbouncer"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    figures = {f["target"]: f for f in lines if "target" in f}
    assert status == 0
    assert lines[-1] == {"audit_violations": []}
    assert set(figures) == {"bare osmp pay", "tolem osmp pay", "pgb tolem osmp pay", "pgb x2 tolem osmp pay"}
    for name, versus in (
        ("pgb tolem osmp pay", "tolem osmp pay"),
        ("pgb x2 tolem osmp pay", "pgb tolem osmp pay"),
    ):
        f = figures[name]
        assert f["payments_per_s"] > 0
        assert f["errors"] == 0, f["error_sample"]
        assert (f["ratio"] > 0, f["ratio_to"]) == (True, "bare osmp pay")
        assert any(note.endswith(f"x {versus}") for note in f["notes"]), f["notes"]
