"""The reconciliation benchmark end to end at a tiny size: it runs and finds what was planted."""

import json

import pytest

from bench.reconcile import expected, main


def test_bench_finds_every_planted_difference(server_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    """300 lines with every kind planted: the command exits 1 and reports exactly those differences."""
    status = main(
        ["--payments", "300", "--accounts", "20", "--other-days", "1", "--dsn", server_dsn, "--json"]
    )
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 0
    assert figures["found_all"] is True
    assert figures["exit_status"] == 1
    assert (
        figures["differences"]
        == expected(300)
        == {
            "missing_ours": 3,
            "missing_theirs": 2,
            "amount_mismatch": 2,
            "code_mismatch": 2,
        }
    )
    assert figures["registry_lines"] == 298
    assert figures["payments_stored"] == 297 + 300
    assert figures["command_s"] > 0
