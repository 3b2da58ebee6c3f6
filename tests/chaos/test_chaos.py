"""The chaos runs of bench/chaos.py at a reduced size: real server, real cluster, real failures,
for every protocol, and towards the billing."""

import pytest

from bench.aggregators import CALLERS
from bench.chaos import run
from bench.chaos_billing import BillingFigures, Plan
from bench.verdict import Figures

pytestmark = pytest.mark.slow
each_protocol = pytest.mark.parametrize("protocol", sorted(CALLERS))


def promised_zeros(figures: Figures) -> tuple[int, int, int, int]:
    """The four numbers that must be zero whatever happened."""
    return (figures.doubles, figures.lost, figures.wrong_answers, figures.audit_violations)


@each_protocol
async def test_races_credit_each_id_once(protocol: str) -> None:
    """Identical pays racing per id: one credit each, identical answers, a clean audit."""
    (figures,) = await run(0.1, ["races"], workers=2, protocol=protocol)
    assert figures.acknowledged == figures.credits == 40
    assert promised_zeros(figures) == (0, 0, 0, 0), figures


@each_protocol
async def test_crash_loses_and_doubles_nothing(protocol: str) -> None:
    """SIGKILL mid-stream and resend: every acknowledged pay credited exactly once."""
    (figures,) = await run(0.1, ["crash"], workers=1, protocol=protocol)
    assert figures.credits == figures.acknowledged == 300
    assert promised_zeros(figures) == (0, 0, 0, 0), figures


@each_protocol
async def test_database_outage_answers_retry_only(protocol: str) -> None:
    """PostgreSQL down: only "retry" answers; back up: the same process credits all once."""
    (figures,) = await run(0.1, ["outage"], workers=1, protocol=protocol)
    assert any("'retry'" in note for note in figures.notes), figures.notes
    assert figures.credits == figures.acknowledged == 150
    assert promised_zeros(figures) == (0, 0, 0, 0), figures


@each_protocol
async def test_slow_database_answers_within_deadline(protocol: str) -> None:
    """A held lock: answers within the deadline as "retry", nothing half-written."""
    (figures,) = await run(1, ["slow"], workers=1, protocol=protocol)
    assert figures.credits == 20
    assert promised_zeros(figures) == (0, 0, 0, 0), figures


async def test_billing_applies_each_acknowledged_credit_once() -> None:
    """Receiver down, then flapping, dispatchers SIGKILLed mid-delivery: each acknowledged credit
    is delivered and applied exactly once, the outbox empties and the audit is clean."""
    (figures,) = await run(1, ["billing"], workers=1, billing=Plan(pays=300, kills=2))
    assert isinstance(figures, BillingFigures)
    assert figures.acknowledged == figures.credits == figures.delivered == 300, figures
    assert figures.ids_seen == figures.applied == 300, figures
    assert figures.deliveries_seen > figures.delivered and figures.repeats > 0, figures
    assert figures.kills == figures.kills_mid_delivery == 2, figures
    billing_zeros = (
        figures.double_applied,
        figures.unapplied,
        figures.bad_signatures,
        figures.pending_after,
        figures.lag_after,
    )
    assert promised_zeros(figures) == (0, 0, 0, 0), figures
    assert billing_zeros == (0, 0, 0, 0, 0), figures
    assert figures.ok
