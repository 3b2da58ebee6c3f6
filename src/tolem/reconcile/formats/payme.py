"""A Payme ``GetStatement`` result (``{"transactions": [...]}``, or the whole JSON-RPC answer
around it) read as a registry: each transaction is a line, numbered by its position."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeGuard

from tolem.reconcile.formats.lines import (
    Format,
    Line,
    LineState,
    Parsed,
    Problem,
    Problems,
    RegistryError,
    TxnKey,
    not_repeated,
    read_code,
)

# Payme's transaction states (Merchant API: 1 created, 2 performed, -1 / -2 cancelled).
_PAYME_STATES: Final = {
    1: LineState.PENDING,
    2: LineState.PAID,
    -1: LineState.CANCELLED,
    -2: LineState.CANCELLED,
}
# The account field that carries the payment code (docs/payme.md: one field named `code`).
_PAYME_ACCOUNT_FIELD: Final = "code"
# Payme Timestamps are milliseconds; anything outside these years is not a payment's time.
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS_RANGE: Final = range(946_684_800_000, 32_503_680_000_000)


def _int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class _Refused(ValueError):
    """A transaction of the statement that is not what GetStatement lists."""


def _payme_line(n: int, item: Any, key: TxnKey) -> Line:
    if not isinstance(item, dict):
        raise _Refused("not an object")
    txn_raw, moment, amount, account, state = (
        item.get(k) for k in ("id", "time", "amount", "account", "state")
    )
    if not isinstance(txn_raw, str):
        raise _Refused("`id` must be a string")
    if not _int(moment) or moment not in _MS_RANGE:
        raise _Refused("`time` must be a Payme Timestamp (milliseconds since the epoch)")
    if not _int(amount) or amount <= 0:
        raise _Refused("`amount` must be a positive integer (tiyin)")
    code = account.get(_PAYME_ACCOUNT_FIELD) if isinstance(account, dict) else None
    if not isinstance(code, str):
        raise _Refused(f"`account.{_PAYME_ACCOUNT_FIELD}` must be a string")
    if not _int(state) or state not in _PAYME_STATES:
        raise _Refused("`state` must be 1, 2, -1 or -2")
    return Line(
        line_no=n,
        txn=key(txn_raw),
        txn_raw=txn_raw[:64],
        paid_at=_EPOCH + timedelta(milliseconds=moment),
        paid_at_raw=str(moment),
        payment_code=read_code(code),
        amount_minor=amount,
        state=_PAYME_STATES[state],
    )


def parse_payme(text: str, *, key: TxnKey) -> Parsed:
    """A Payme GetStatement result, alone or inside its JSON-RPC answer."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryError([Problem(f"line {exc.lineno}", f"not JSON: {exc.msg}")]) from exc
    if isinstance(document, dict) and isinstance(document.get("result"), dict):
        document = document["result"]
    items = document.get("transactions") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise RegistryError([Problem("file", 'expected {"transactions": [...]}, a GetStatement result')])
    problems = Problems()
    lines: list[Line] = []
    seen: dict[str, int] = {}
    for n, item in enumerate(items, 1):
        where = f"transaction {n}"
        try:
            line = _payme_line(n, item, key)
        except ValueError as exc:
            problems.add(where, str(exc))
            continue
        if not_repeated(seen, line, problems, where):
            lines.append(line)
    problems.raise_any()
    return Parsed(Format.PAYME, lines)
