"""`frozen` values: immutable to the type checker, equal and hashable by their fields."""

from mypy import api

from tolem.core.model import CheckResult

SNIPPET = """
from tolem.core.model import CheckResult
found = CheckResult(account_id=1, payer_id=2, payer_name="A", payment_code="0012", currency="KGS")
found.payer_name = "B"
"""


def test_the_type_checker_refuses_assignment_to_a_field() -> None:
    """mypy rejects writing to a field of a `frozen` class, as for a frozen dataclass."""
    # No configuration file: the project's names the files to check, which -c excludes.
    out, _, status = api.run(["--config-file=", "--no-incremental", "--follow-imports=silent", "-c", SNIPPET])
    assert status == 1
    assert 'Property "payer_name" defined in "CheckResult" is read-only' in out


def test_equal_fields_make_equal_hashable_values() -> None:
    """Two values with the same fields are equal, hash alike and key one dict entry."""
    first = CheckResult(account_id=1, payer_id=2, payer_name="A", payment_code="0012", currency="KGS")
    second = CheckResult(account_id=1, payer_id=2, payer_name="A", payment_code="0012", currency="KGS")
    other = CheckResult(account_id=1, payer_id=2, payer_name="B", payment_code="0012", currency="KGS")
    assert first == second != other
    assert len({first: 1, second: 2, other: 3}) == 2
