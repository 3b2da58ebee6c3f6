"""Any CSV registry with a header row, read through a column mapping the operator gives."""

import csv
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

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
    return read_amount(raw)


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


def _records(reader: Any, problems: Problems) -> Iterator[list[str]]:
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
    problems = Problems()
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
                payment_code=read_code(cell["code"]) if "code" in cell else None,
                amount_minor=_csv_amount(cell["amount"], mapping),
                state=_csv_state(cell.get("state"), mapping),
            )
        except ValueError as exc:
            problems.add(where, str(exc))
            continue
        if not_repeated(seen, line, problems, where):
            lines.append(line)
    problems.raise_any()
    return Parsed(Format.CSV, lines)
