"""Two tolem instances behind HAProxy, through one PgBouncer, against one database
(bench/deployment.py at a reduced size)."""

import pytest

from bench.deployment import two_instances
from tests.deployment.conftest import need

pytestmark = pytest.mark.slow


async def test_races_across_instances_and_one_instance_killed() -> None:
    """Identical pays spread over both instances credit once each; SIGKILLing one instance with
    requests in flight loses and doubles nothing while the other keeps answering."""
    need("pgbouncer", "haproxy")
    races, crash = await two_instances(0.1, "osmp")
    for figures, expected in ((races, 40), (crash, 300)):
        assert figures.acknowledged == figures.credits == expected, figures
        assert (figures.doubles, figures.lost, figures.wrong_answers, figures.audit_violations) == (
            0,
            0,
            0,
            0,
        )
    for figures in (races, crash):
        spread = next(note for note in figures.notes if note.startswith("answers per instance"))
        counts = [int(part.split()[1]) for part in spread.split(": ")[1].split(", ")]
        assert len(counts) == 2 and min(counts) > 0, spread
