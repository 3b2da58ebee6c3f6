"""The chaos runs of bench/chaos.py at a reduced size: real server, real cluster, real failures,
for every protocol."""

import pytest

from bench.aggregators import CALLERS
from bench.chaos import run
from bench.verdict import Figures

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("protocol", sorted(CALLERS))]


def promised_zeros(figures: Figures) -> tuple[int, int, int, int]:
    """The four numbers that must be zero whatever happened."""
    return (figures.doubles, figures.lost, figures.wrong_answers, figures.audit_violations)


async def test_races_credit_each_id_once(protocol: str) -> None:
    """Identical pays racing per id: one credit each, identical answers, a clean audit."""
    (figures,) = await run(0.1, ["races"], workers=2, protocol=protocol)
    assert figures.acknowledged == figures.credits == 40
    assert promised_zeros(figures) == (0, 0, 0, 0), figures


async def test_crash_loses_and_doubles_nothing(protocol: str) -> None:
    """SIGKILL mid-stream and resend: every acknowledged pay credited exactly once."""
    (figures,) = await run(0.1, ["crash"], workers=1, protocol=protocol)
    assert figures.credits == figures.acknowledged == 300
    assert promised_zeros(figures) == (0, 0, 0, 0), figures


async def test_database_outage_answers_retry_only(protocol: str) -> None:
    """PostgreSQL down: only "retry" answers; back up: the same process credits all once."""
    (figures,) = await run(0.1, ["outage"], workers=1, protocol=protocol)
    assert any("'retry'" in note for note in figures.notes), figures.notes
    assert figures.credits == figures.acknowledged == 150
    assert promised_zeros(figures) == (0, 0, 0, 0), figures


async def test_slow_database_answers_within_deadline(protocol: str) -> None:
    """A held lock: answers within the deadline as "retry", nothing half-written."""
    (figures,) = await run(1, ["slow"], workers=1, protocol=protocol)
    assert figures.credits == 20
    assert promised_zeros(figures) == (0, 0, 0, 0), figures
