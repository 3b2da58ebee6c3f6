"""The QIWI/OSMP provider registry: one tab-separated line per payment
(``txn_id  date  time  account  sum``), then ``Total: <count> <sum>``, which must agree with
the lines so that a file cut short is refused rather than diffed."""

import re
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo

from tolem.core.money import AmountError, format_amount, parse_amount
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
    read_amount,
    read_code,
)

_QIWI_TOTAL_RE: Final = re.compile(r"total:\s*([0-9]{1,9})\s+(\S+)", re.IGNORECASE)
_QIWI_FIELDS: Final = 5
_DATE_DOTTED_RE: Final = re.compile(r"([0-9]{2})\.([0-9]{2})\.([0-9]{4})")
_DATE_ISO_RE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIME_RE: Final = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})")


def _qiwi_moment(date_raw: str, time_raw: str, zone: ZoneInfo) -> datetime:
    if match := _DATE_DOTTED_RE.fullmatch(date_raw):
        day, month, year = (int(g) for g in match.groups())
    elif match := _DATE_ISO_RE.fullmatch(date_raw):
        year, month, day = (int(g) for g in match.groups())
    else:
        raise ValueError(f"date must be DD.MM.YYYY or YYYY-MM-DD: {date_raw[:20]!r}")
    clock = _TIME_RE.fullmatch(time_raw)
    if clock is None:
        raise ValueError(f"time must be HH:MM:SS: {time_raw[:20]!r}")
    hour, minute, second = (int(g) for g in clock.groups())
    try:
        local = datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise ValueError(f"no such date and time: {date_raw} {time_raw}") from exc
    return local.replace(tzinfo=zone).astimezone(UTC)


def parse_qiwi(text: str, *, zone: ZoneInfo, key: TxnKey) -> Parsed:
    """A QIWI/OSMP registry: tab-separated payment lines, then `Total: <count> <sum>`."""
    problems = Problems()
    numbered = [(n, raw.rstrip("\r")) for n, raw in enumerate(text.split("\n"), 1)]
    content = [(n, line) for n, line in numbered if line.strip()]
    if not content:
        raise RegistryError([Problem("file", "empty: not even the Total line")])
    total_no, total_line = content[-1]
    trailer = _QIWI_TOTAL_RE.fullmatch(total_line.strip())
    declared: tuple[int, int] | None = None
    if trailer is None:
        problems.add(f"line {total_no}", "the last line must be `Total: <count> <sum>` (file cut short?)")
    else:
        content = content[:-1]
        try:
            declared = (int(trailer.group(1)), parse_amount(trailer.group(2), allow_zero=True))
        except AmountError as exc:
            problems.add(f"line {total_no}", f"Total sum: {exc}")
    lines: list[Line] = []
    seen: dict[str, int] = {}
    for n, raw in content:
        where = f"line {n}"
        if raw.strip().lower().startswith("total:"):
            problems.add(where, "a Total line before the end of the file")
            continue
        fields = raw.split("\t")
        if len(fields) != _QIWI_FIELDS:
            problems.add(
                where,
                f"expected {_QIWI_FIELDS} tab-separated fields (txn_id, date, time, account, sum), "
                f"found {len(fields)}",
            )
            continue
        txn_raw, date_raw, time_raw, account, sum_raw = (f.strip() for f in fields)
        try:
            line = Line(
                line_no=n,
                txn=key(txn_raw),
                txn_raw=txn_raw,
                paid_at=_qiwi_moment(date_raw, time_raw, zone),
                paid_at_raw=f"{date_raw} {time_raw}",
                payment_code=read_code(account),
                amount_minor=read_amount(sum_raw),
                state=LineState.PAID,
            )
        except ValueError as exc:
            problems.add(where, str(exc))
            continue
        if not_repeated(seen, line, problems, where):
            lines.append(line)
    problems.raise_any()
    assert declared is not None
    count, total = len(lines), sum(line.amount_minor for line in lines)
    if declared != (count, total):
        problems.add(
            f"line {total_no}",
            f"Total says {declared[0]} payment(s), {format_amount(declared[1])}; "
            f"the lines hold {count}, {format_amount(total)}",
        )
        problems.raise_any()
    return Parsed(Format.QIWI, lines, declared_count=declared[0], declared_minor=declared[1])
