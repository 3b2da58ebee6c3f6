"""Shared pieces for fuzzing the gateways: hypothesis settings and what "money moved" means."""

from hypothesis import HealthCheck, settings

from tests.conftest import Factory

# Fixtures (one app, one database) are built once per test and shared by every example on
# purpose: state left by earlier examples is part of what later ones are thrown against.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


async def money(factory: Factory) -> tuple[int, int, int]:
    """(sum of account balances, payments stored, transfers written)."""
    return (
        await factory.count(
            "SELECT coalesce(sum(balance_minor), 0) FROM ledger_accounts WHERE kind = 'customer'"
        ),
        await factory.count("SELECT count(*) FROM payments"),
        await factory.count("SELECT count(*) FROM transfers"),
    )
