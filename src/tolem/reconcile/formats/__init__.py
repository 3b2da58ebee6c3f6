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

from collections import Counter
from datetime import date
from zoneinfo import ZoneInfo

from tolem.reconcile.formats.csv_mapping import (
    DEFAULT_CANCELLED,
    DEFAULT_PAID,
    DEFAULT_PENDING,
    CsvMapping,
    parse_csv,
)
from tolem.reconcile.formats.lines import (
    Format,
    Line,
    LineState,
    Parsed,
    Problem,
    RegistryError,
    TxnKey,
    decode,
    txn_key,
)
from tolem.reconcile.formats.payme import parse_payme
from tolem.reconcile.formats.qiwi import parse_qiwi

__all__ = [
    "DEFAULT_CANCELLED",
    "DEFAULT_PAID",
    "DEFAULT_PENDING",
    "CsvMapping",
    "Format",
    "Line",
    "LineState",
    "Parsed",
    "Problem",
    "RegistryError",
    "TxnKey",
    "likely_day",
    "parse",
    "txn_key",
]


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
