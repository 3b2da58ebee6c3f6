"""What every registry format reads into: lines, their states, the refusal with its problems,
and the readers of the fields all formats share (transaction ids, payment codes, amounts)."""

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from tolem.core.model import WireProtocol
from tolem.core.money import AmountError, parse_amount
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
class Problems:
    """What a file's reading found wrong: every problem counted, the first MAX_PROBLEMS kept."""

    found: list[Problem] = field(default_factory=list)
    total: int = 0

    def add(self, where: str, reason: str) -> None:
        """One more problem at `where`."""
        self.total += 1
        if len(self.found) < MAX_PROBLEMS:
            self.found.append(Problem(where, reason))

    def raise_any(self) -> None:
        """Refuses the file (RegistryError) if anything was found."""
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


def read_code(raw: str) -> str:
    """A payment code as the registry writes it, normalised; ValueError if it cannot be one."""
    code = normalize(raw)
    if not code or len(code) > _MAX_CODE or not code.isprintable():
        raise ValueError(f"payment code must be 1 to {_MAX_CODE} printable characters")
    return code


def read_amount(raw: str) -> int:
    """A positive amount in major units (`12.50`) as minor units; ValueError says what is wrong."""
    try:
        return parse_amount(raw)
    except AmountError as exc:
        raise ValueError(str(exc)) from exc


def not_repeated(seen: dict[str, int], line: Line, problems: Problems, where: str) -> bool:
    """Whether the line's transaction is listed for the first time (else a problem at `where`)."""
    first = seen.setdefault(line.txn, line.line_no)
    if first != line.line_no:
        problems.add(where, f"transaction {line.txn_raw} is listed again (first at {first})")
        return False
    return True
