"""The code's enums name exactly the words the migrated schema uses: a word renamed or added on
one side only fails here, not in production."""

import re
import typing

import asyncpg

from tolem.admin import models as admin_models
from tolem.core.model import AccountStatus
from tolem.core.service import REFUSALS
from tolem.core.store import StoreOutcome

# Where the payment functions name an outcome: the two packing helpers, a row built in place,
# and the refusal chosen by a CASE before the insert.
_OUTCOME_CALLS = re.compile(r"(?:tolem_result|tolem_outcome|ROW)\('(\w+)'")
_REFUSAL_CASE = re.compile(r"v_refusal\s*:=\s*CASE(.*?)\bEND\b", re.DOTALL)
_THEN_WORD = re.compile(r"THEN\s+'(\w+)'")


async def _function_sources(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT prosrc FROM pg_proc WHERE proname LIKE 'tolem\\_%' AND pronamespace = 'public'::regnamespace"
    )
    return [row["prosrc"] for row in rows]


async def test_store_outcomes_are_the_payment_functions_words(pool: asyncpg.Pool) -> None:
    """StoreOutcome holds exactly the outcome words the installed payment functions answer with."""
    words: set[str] = set()
    for source in await _function_sources(pool):
        words |= set(_OUTCOME_CALLS.findall(source))
        for case in _REFUSAL_CASE.findall(source):
            words |= set(_THEN_WORD.findall(case))
    assert words == set(StoreOutcome)


def test_every_outcome_but_ok_is_a_refusal() -> None:
    """The service maps each outcome word other than ok to the refusal it raises."""
    assert set(REFUSALS) == set(StoreOutcome) - {StoreOutcome.OK}


async def test_account_status_is_the_check_constraints_words(pool: asyncpg.Pool) -> None:
    """AccountStatus holds exactly the words ck__accounts__status admits."""
    definition = await pool.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'ck__accounts__status'"
    )
    assert set(re.findall(r"'(\w+)'", definition)) == set(AccountStatus)


def test_the_admin_api_offers_the_same_statuses() -> None:
    """The admin API's status fields admit exactly AccountStatus's words."""
    for model in (admin_models.AccountStatus, admin_models.Account):
        assert set(typing.get_args(model.model_fields["status"].annotation)) == set(AccountStatus), model
