"""Reading aggregators' registry files into lines, strictly: one bad line refuses the file.

Three formats:

* ``qiwi``: the QIWI/OSMP provider registry, one tab-separated line per payment
  (``txn_id  date  time  account  sum``) and a last line ``Total: <count> <sum>`` that must
  agree with the lines, so that a file cut short is refused rather than diffed.
* ``csv``: any CSV with a header row, read through a column mapping given by the operator.
* ``payme``: a Payme ``GetStatement`` result (``{"transactions": [...]}``, or the whole
  JSON-RPC answer around it).

Local times without an offset are read in the registry's zone. Amounts are parsed as exact
decimals (or integers in minor units); a float never holds one. Every problem is collected with
its line number (for JSON: the transaction's position), so the operator sees all of them at once.
"""

import csv
import enum
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, TypeGuard
from zoneinfo import ZoneInfo

from tolem.core.model import WireProtocol
from tolem.core.money import AmountError, format_amount, parse_amount
from tolem.core.payment_codes import normalize


class Format(enum.StrEnum):
    """Registry file formats."""

    QIWI = "qiwi"
    CSV = "csv"
    PAYME = "payme"


class LineState(enum.StrEnum):
    """What the aggregator says became of a payment."""

    PAID = "paid"
    CANCELLED = "cancelled"
    # Created but not performed (Payme state 1): no money has moved on their side either.
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class Line:
    """One payment as the registry lists it."""

    line_no: int
    txn: str
    txn_raw: str
    paid_at: datetime
    paid_at_raw: str
    payment_code: str | None
    amount_minor: int
    state: LineState


@dataclass(frozen=True, slots=True)
class Parsed:
    """A whole registry file, every line valid."""

    format: Format
    lines: list[Line]
    declared_count: int | None = None
    declared_minor: int | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a line (or the file) was refused; `where` is "line 7", "transaction 3" or "file"."""

    where: str
    reason: str


# Enough to see what is wrong with a file; a file with more bad lines is not a registry.
MAX_PROBLEMS: Final = 100


class RegistryError(ValueError):
    """The file is refused; nothing of it may be stored."""

    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        super().__init__("; ".join(f"{p.where}: {p.reason}" for p in problems[:3]))
        self.problems = problems
        self.total = len(problems) if total is None else total


@dataclass
class _Problems:
    found: list[Problem] = field(default_factory=list)
    total: int = 0

    def add(self, where: str, reason: str) -> None:
        self.total += 1
        if len(self.found) < MAX_PROBLEMS:
            self.found.append(Problem(where, reason))

    def raise_any(self) -> None:
        if self.total:
            raise RegistryError(self.found, self.total)


TxnKey = Callable[[str], str]

_DIGITS_RE: Final = re.compile(r"[0-9]{1,28}")
_TOKEN_RE: Final = re.compile(r"[!-~]{1,64}")


def _numeric_txn(raw: str) -> str:
    if not _DIGITS_RE.fullmatch(raw):
        raise ValueError(f"transaction id must be 1 to 28 digits: {raw[:40]!r}")
    # Stored by its number (OSMP and Click): `007` and `7` are one payment (docs/osmp.md).
    return str(int(raw))


def _token_txn(raw: str) -> str:
    if not _TOKEN_RE.fullmatch(raw):
        raise ValueError(f"transaction id must be 1 to 64 visible ASCII characters: {raw[:40]!r}")
    return raw


def txn_key(protocol: WireProtocol) -> TxnKey:
    """How a provider's transaction ids become payments.external_id."""
    return _token_txn if protocol is WireProtocol.PAYME else _numeric_txn


def decode(data: bytes) -> str:
    """The file's text: UTF-8, a byte-order mark dropped."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RegistryError([Problem("file", f"not UTF-8 (byte {exc.start})")]) from exc


_MAX_CODE: Final = 200


def _code(raw: str) -> str:
    code = normalize(raw)
    if not code or len(code) > _MAX_CODE or not code.isprintable():
        raise ValueError(f"payment code must be 1 to {_MAX_CODE} printable characters")
    return code


def _money(raw: str) -> int:
    try:
        return parse_amount(raw)
    except AmountError as exc:
        raise ValueError(str(exc)) from exc


def _checked(seen: dict[str, int], line: Line, problems: _Problems, where: str) -> bool:
    first = seen.setdefault(line.txn, line.line_no)
    if first != line.line_no:
        problems.add(where, f"transaction {line.txn_raw} is listed again (first at {first})")
        return False
    return True


# --- QIWI / OSMP --------------------------------------------------------------------------------

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
    problems = _Problems()
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
                payment_code=_code(account),
                amount_minor=_money(sum_raw),
                state=LineState.PAID,
            )
        except ValueError as exc:
            problems.add(where, str(exc))
            continue
        if _checked(seen, line, problems, where):
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


# --- generic CSV --------------------------------------------------------------------------------

CSV_FIELDS: Final = ("txn", "amount", "time", "date", "code", "state")
_CSV_REQUIRED: Final = ("txn", "amount", "time")
DEFAULT_PAID: Final = frozenset({"paid", "success", "ok", "completed"})
DEFAULT_CANCELLED: Final = frozenset({"cancelled", "canceled", "refunded", "reversed"})
DEFAULT_PENDING: Final = frozenset({"pending", "created"})
_MINOR_RE: Final = re.compile(r"[1-9][0-9]{0,17}")


@dataclass(frozen=True, slots=True)
class CsvMapping:
    """Which column holds what, and how its values are written.

    `columns` maps our fields (txn, amount, time; optionally date, code, state) to header
    names. With a `date` column, `time` holds only the clock time and the two are joined.
    `time_format` is a strptime pattern; without it times are ISO 8601. Times without an
    offset are the registry zone's.
    """

    columns: Mapping[str, str]
    delimiter: str = ","
    time_format: str | None = None
    amount_in_minor: bool = False
    paid: frozenset[str] = DEFAULT_PAID
    cancelled: frozenset[str] = DEFAULT_CANCELLED
    pending: frozenset[str] = DEFAULT_PENDING

    def problems(self) -> list[str]:
        """What is wrong with the mapping itself."""
        known = ", ".join(CSV_FIELDS)
        found = [f"unknown field {f!r} (fields: {known})" for f in self.columns if f not in CSV_FIELDS]
        found += [f"map the {f!r} field (--map {f}=COLUMN)" for f in _CSV_REQUIRED if f not in self.columns]
        if len(self.delimiter) != 1:
            found.append("the delimiter must be one character")
        overlap = (self.paid & self.cancelled) | (self.paid & self.pending) | (self.cancelled & self.pending)
        if overlap:
            found.append(f"state value(s) mapped twice: {', '.join(sorted(overlap))}")
        return found


def _csv_moment(raw: str, mapping: CsvMapping, zone: ZoneInfo) -> datetime:
    try:
        if mapping.time_format is not None:
            value = datetime.strptime(raw, mapping.time_format)
        else:
            value = datetime.fromisoformat(raw)
    except ValueError as exc:
        wanted = mapping.time_format or "ISO 8601"
        raise ValueError(f"time {raw[:40]!r} is not {wanted}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _csv_amount(raw: str, mapping: CsvMapping) -> int:
    if mapping.amount_in_minor:
        if not _MINOR_RE.fullmatch(raw):
            raise ValueError(f"amount in minor units must be a positive integer: {raw[:40]!r}")
        return int(raw)
    return _money(raw)


def _csv_state(raw: str | None, mapping: CsvMapping) -> LineState:
    if raw is None:
        return LineState.PAID
    value = raw.lower()
    for state, values in (
        (LineState.PAID, mapping.paid),
        (LineState.CANCELLED, mapping.cancelled),
        (LineState.PENDING, mapping.pending),
    ):
        if value in values:
            return state
    raise ValueError(
        f"unknown state {raw[:40]!r} (paid: {', '.join(sorted(mapping.paid))}; "
        f"cancelled: {', '.join(sorted(mapping.cancelled))}; pending: {', '.join(sorted(mapping.pending))})"
    )


def _records(reader: Any, problems: _Problems) -> Iterator[list[str]]:
    """The reader's records; a quoting error ends the file with a problem at its line."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.add(f"line {reader.line_num}", f"unreadable CSV: {exc}")
            return


def parse_csv(text: str, *, zone: ZoneInfo, key: TxnKey, mapping: CsvMapping) -> Parsed:
    """A CSV registry with a header row, read through `mapping`."""
    problems = _Problems()
    for reason in mapping.problems():
        problems.add("mapping", reason)
    problems.raise_any()
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=mapping.delimiter, strict=True)
    records = _records(reader, problems)
    header = next(records, None)
    problems.raise_any()
    if header is None:
        raise RegistryError([Problem("file", "empty: no header row")])
    index = {name.strip(): i for i, name in enumerate(header)}
    for name, column in mapping.columns.items():
        if column not in index:
            problems.add(
                f"line {reader.line_num}",
                f"no column {column!r} (mapped to {name}); the header has: {', '.join(index)}",
            )
    problems.raise_any()
    where_of = {name: index[column] for name, column in mapping.columns.items()}
    lines: list[Line] = []
    seen: dict[str, int] = {}
    for record in records:
        n = reader.line_num
        where = f"line {n}"
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            problems.add(where, f"{len(record)} field(s) where the header has {len(header)}")
            continue
        cell = {name: record[i].strip() for name, i in where_of.items()}
        try:
            moment = cell["time"] if "date" not in cell else f"{cell['date']} {cell['time']}"
            line = Line(
                line_no=n,
                txn=key(cell["txn"]),
                txn_raw=cell["txn"],
                paid_at=_csv_moment(moment, mapping, zone),
                paid_at_raw=moment[:64],
                payment_code=_code(cell["code"]) if "code" in cell else None,
                amount_minor=_csv_amount(cell["amount"], mapping),
                state=_csv_state(cell.get("state"), mapping),
            )
        except ValueError as exc:
            problems.add(where, str(exc))
            continue
        if _checked(seen, line, problems, where):
            lines.append(line)
    problems.raise_any()
    return Parsed(Format.CSV, lines)


# --- Payme GetStatement -------------------------------------------------------------------------

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
        payment_code=_code(code),
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
    problems = _Problems()
    lines: list[Line] = []
    seen: dict[str, int] = {}
    for n, item in enumerate(items, 1):
        where = f"transaction {n}"
        try:
            line = _payme_line(n, item, key)
        except ValueError as exc:
            problems.add(where, str(exc))
            continue
        if _checked(seen, line, problems, where):
            lines.append(line)
    problems.raise_any()
    return Parsed(Format.PAYME, lines)


def parse(
    data: bytes,
    fmt: Format,
    *,
    zone: ZoneInfo,
    key: TxnKey,
    mapping: CsvMapping | None = None,
) -> Parsed:
    """The registry in `data`; RegistryError lists what refuses it."""
    text = decode(data)
    if fmt is Format.QIWI:
        return parse_qiwi(text, zone=zone, key=key)
    if fmt is Format.PAYME:
        return parse_payme(text, key=key)
    if mapping is None:
        raise RegistryError([Problem("mapping", "a CSV registry needs a column mapping (--map)")])
    return parse_csv(text, zone=zone, key=key, mapping=mapping)


def likely_day(lines: list[Line], zone: ZoneInfo) -> date | None:
    """The local date most lines carry: the day the registry covers, when nobody said.

    A payment near midnight may carry the neighbouring date, so unanimity is not required; a
    tie (or no lines) decides nothing.
    """
    counts = Counter(line.paid_at.astimezone(zone).date() for line in lines).most_common(2)
    if not counts or (len(counts) == 2 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]
