"""Registry files read strictly: every format's good shape, and bad lines refused by number."""

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from tolem.core.model import WireProtocol
from tolem.reconcile import formats
from tolem.reconcile.formats import CsvMapping, Format, LineState, RegistryError

BISHKEK = ZoneInfo("Asia/Bishkek")
OSMP = formats.txn_key(WireProtocol.OSMP)
PAYME = formats.txn_key(WireProtocol.PAYME)


def qiwi(*lines: str, total: str | None = None) -> bytes:
    """A QIWI registry file from its payment lines and Total line."""
    body = "\n".join(lines)
    return (body + "\n" + (total or "") + "\n").encode()


def problems(exc: pytest.ExceptionInfo[RegistryError]) -> list[tuple[str, str]]:
    """(where, reason) of every problem found."""
    return [(p.where, p.reason) for p in exc.value.problems]


class TestQiwi:
    def test_lines_and_total_are_read_in_the_zone(self) -> None:
        """Tab-separated lines become UTC times, minor units and normalized ids; Total must agree."""
        data = qiwi(
            "0001005\t25.11.2026\t23:59:59\t00 1234 5678 90\t1234.50",
            "77\t2026-11-26\t00:00:01\t001234567890\t10",
            total="Total: 2 1244.50",
        )
        parsed = formats.parse(data, Format.QIWI, zone=BISHKEK, key=OSMP)
        first, second = parsed.lines
        assert (first.line_no, first.txn, first.txn_raw) == (1, "1005", "0001005")
        assert first.paid_at == datetime(2026, 11, 25, 17, 59, 59, tzinfo=UTC)
        assert first.paid_at_raw == "25.11.2026 23:59:59"
        assert (first.payment_code, first.amount_minor, first.state) == (
            "001234567890",
            123450,
            LineState.PAID,
        )
        assert second.paid_at == datetime(2026, 11, 25, 18, 0, 1, tzinfo=UTC)
        assert (parsed.declared_count, parsed.declared_minor) == (2, 124450)

    def test_every_bad_line_is_named_by_number(self) -> None:
        """Each malformed line is refused with its line number and reason; all are reported."""
        data = qiwi(
            "1\t25.11.2026\t10:00:00\t001234567890\t100.00",
            "2\t25.11.2026\t10:00\t001234567890\t100.00",
            "3 25.11.2026 10:00:00 001234567890 100.00",
            "x4\t25.11.2026\t10:00:00\t001234567890\t100.00",
            "5\t31.11.2026\t10:00:00\t001234567890\t100.00",
            "6\t25.11.2026\t10:00:00\t001234567890\t100,00",
            "7\t25.11.2026\t10:00:00\t001234567890\t1.001",
            "001\t25.11.2026\t10:00:00\t001234567890\t100.00",
            total="Total: 8 800.00",
        )
        with pytest.raises(RegistryError) as refused:
            formats.parse(data, Format.QIWI, zone=BISHKEK, key=OSMP)
        found = problems(refused)
        assert [where for where, _ in found] == [
            "line 2",
            "line 3",
            "line 4",
            "line 5",
            "line 6",
            "line 7",
            "line 8",
        ]
        reasons = dict(found)
        assert "HH:MM:SS" in reasons["line 2"]
        assert "5 tab-separated fields" in reasons["line 3"]
        assert "digits" in reasons["line 4"]
        assert "no such date" in reasons["line 5"]
        assert "listed again (first at 1)" in reasons["line 8"]

    @pytest.mark.parametrize(
        ("total", "reason"),
        [
            (None, "Total"),
            ("Total: 3 300.00", "Total says 3 payment(s), 300.00; the lines hold 2, 200.00"),
            ("Total: 2 200.01", "the lines hold 2, 200.00"),
            ("Total: 2 two", "Total sum"),
        ],
    )
    def test_total_must_be_last_and_agree(self, total: str | None, reason: str) -> None:
        """A missing (cut short), disagreeing or unreadable Total line refuses the file."""
        data = qiwi(
            "1\t25.11.2026\t10:00:00\t001234567890\t100.00",
            "2\t25.11.2026\t10:00:00\t001234567890\t100.00",
            total=total,
        )
        with pytest.raises(RegistryError) as refused:
            formats.parse(data, Format.QIWI, zone=BISHKEK, key=OSMP)
        assert reason in refused.value.problems[0].reason

    def test_total_in_the_middle_and_non_utf8_are_refused(self) -> None:
        """A Total line before the end, or bytes that are not UTF-8, refuse the file."""
        data = qiwi("Total: 0 0.00", "1\t25.11.2026\t10:00:00\t001234567890\t1.00", total="Total: 1 1.00")
        with pytest.raises(RegistryError) as refused:
            formats.parse(data, Format.QIWI, zone=BISHKEK, key=OSMP)
        assert problems(refused) == [("line 1", "a Total line before the end of the file")]
        with pytest.raises(RegistryError, match="UTF-8"):
            formats.parse(b"1\t\xff\n", Format.QIWI, zone=BISHKEK, key=OSMP)

    def test_an_empty_registry_has_its_total(self) -> None:
        """A day without payments is a file with only `Total: 0 0.00`."""
        parsed = formats.parse(b"Total: 0 0.00\r\n", Format.QIWI, zone=BISHKEK, key=OSMP)
        assert (parsed.lines, parsed.declared_count, parsed.declared_minor) == ([], 0, 0)


class TestCsv:
    MAPPING = CsvMapping(
        columns={
            "txn": "Id",
            "amount": "Sum",
            "date": "Date",
            "time": "Time",
            "code": "Account",
            "state": "Status",
        },
        delimiter=";",
        time_format="%d.%m.%Y %H:%M:%S",
    )

    def test_mapped_columns_are_read(self) -> None:
        """Header names are mapped to fields; the state column's words become paid or cancelled."""
        text = (
            "Id;Date;Time;Account;Sum;Status;Note\n"
            "10;25.11.2026;12:00:00;001234567890;50.00;SUCCESS;x\n"
            '11;25.11.2026;13:00:00;001234567890;5.5;Refunded;"a; b"\n'
        )
        parsed = formats.parse(text.encode(), Format.CSV, zone=BISHKEK, key=OSMP, mapping=self.MAPPING)
        assert [(line.line_no, line.txn, line.amount_minor, line.state) for line in parsed.lines] == [
            (2, "10", 5000, LineState.PAID),
            (3, "11", 550, LineState.CANCELLED),
        ]
        assert parsed.lines[0].paid_at == datetime(2026, 11, 25, 6, 0, tzinfo=UTC)

    def test_iso_times_with_an_offset_keep_it_and_minor_units_are_integers(self) -> None:
        """Default ISO times honour a given offset; amounts in minor units must be integers."""
        mapping = CsvMapping(columns={"txn": "t", "amount": "a", "time": "at"}, amount_in_minor=True)
        text = "t,a,at\n1,1050,2026-11-25T23:59:59+00:00\n2,10.50,2026-11-25 10:00:00\n"
        with pytest.raises(RegistryError) as refused:
            formats.parse(text.encode(), Format.CSV, zone=BISHKEK, key=OSMP, mapping=mapping)
        assert problems(refused) == [("line 3", "amount in minor units must be a positive integer: '10.50'")]
        good = formats.parse(
            b"t,a,at\n1,1050,2026-11-25T23:59:59+00:00\n", Format.CSV, zone=BISHKEK, key=OSMP, mapping=mapping
        )
        assert good.lines[0].paid_at == datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC)
        assert good.lines[0].payment_code is None

    def test_missing_columns_unknown_states_and_short_rows_are_refused(self) -> None:
        """A mapped column absent from the header, an unknown state word or a short row refuse the file."""
        with pytest.raises(RegistryError) as refused:
            formats.parse(b"Id;Sum\n1;2\n", Format.CSV, zone=BISHKEK, key=OSMP, mapping=self.MAPPING)
        assert {where for where, _ in problems(refused)} == {"line 1"}
        text = "Id;Date;Time;Account;Sum;Status\n1;25.11.2026;12:00:00;0012;1.00;maybe\n2;25.11.2026\n"
        with pytest.raises(RegistryError) as refused:
            formats.parse(text.encode(), Format.CSV, zone=BISHKEK, key=OSMP, mapping=self.MAPPING)
        found = dict(problems(refused))
        assert "unknown state 'maybe'" in found["line 2"]
        assert "2 field(s) where the header has 6" in found["line 3"]

    def test_a_mapping_must_name_the_required_fields(self) -> None:
        """Without txn, amount and time mapped, nothing is read."""
        assert CsvMapping(columns={"txn": "a"}).problems() == [
            "map the 'amount' field (--map amount=COLUMN)",
            "map the 'time' field (--map time=COLUMN)",
        ]
        assert "unknown field 'sum'" in CsvMapping(columns={"sum": "a"}).problems()[0]


class TestPayme:
    def transaction(self, **fields: object) -> dict[str, object]:
        """One GetStatement transaction, `fields` replaced."""
        return {
            "id": "65f0c2a1b7e4d93a1c2f8e10",
            "time": 1_764_093_599_000,
            "amount": 500_000,
            "account": {"code": "001234567890"},
            "create_time": 1_764_093_599_100,
            "perform_time": 1_764_093_600_000,
            "cancel_time": 0,
            "transaction": "81234",
            "state": 2,
            "reason": None,
            **fields,
        }

    def test_statement_alone_or_inside_its_answer(self) -> None:
        """Both {"transactions": …} and the JSON-RPC answer around it are read; states mapped."""
        items = [
            self.transaction(),
            self.transaction(id="b" * 24, state=-2),
            self.transaction(id="c" * 24, state=1),
        ]
        for document in (
            {"transactions": items},
            {"jsonrpc": "2.0", "id": 7, "result": {"transactions": items}},
        ):
            parsed = formats.parse(json.dumps(document).encode(), Format.PAYME, zone=BISHKEK, key=PAYME)
            assert [line.state for line in parsed.lines] == [
                LineState.PAID,
                LineState.CANCELLED,
                LineState.PENDING,
            ]
            assert parsed.lines[0].paid_at == datetime(2025, 11, 25, 17, 59, 59, tzinfo=UTC)
            assert (parsed.lines[0].amount_minor, parsed.lines[0].paid_at_raw) == (500_000, "1764093599000")

    def test_bad_transactions_are_named_by_position(self) -> None:
        """Floats, booleans, unknown states and missing codes are refused with the item's number."""
        items = [
            self.transaction(),
            self.transaction(id="b" * 24, amount=10.5),
            self.transaction(id="c" * 24, state=True),
            self.transaction(id="d" * 24, account={"login": "x"}),
            self.transaction(id="e" * 24, time="2026-11-25"),
            self.transaction(),
        ]
        with pytest.raises(RegistryError) as refused:
            formats.parse(json.dumps({"transactions": items}).encode(), Format.PAYME, zone=BISHKEK, key=PAYME)
        assert [where for where, _ in problems(refused)] == [f"transaction {n}" for n in (2, 3, 4, 5, 6)]
        with pytest.raises(RegistryError, match="not JSON"):
            formats.parse(b'{"transactions": [', Format.PAYME, zone=BISHKEK, key=PAYME)
        with pytest.raises(RegistryError, match="GetStatement"):
            formats.parse(b"[]", Format.PAYME, zone=BISHKEK, key=PAYME)


def test_likely_day_is_the_date_most_lines_carry() -> None:
    """A payment across midnight does not move the registry's day; a tie decides nothing."""
    key_lines = formats.parse(
        qiwi(
            "1\t25.11.2026\t10:00:00\t001234567890\t1.00",
            "2\t25.11.2026\t11:00:00\t001234567890\t1.00",
            "3\t26.11.2026\t00:00:01\t001234567890\t1.00",
            total="Total: 3 3.00",
        ),
        Format.QIWI,
        zone=BISHKEK,
        key=OSMP,
    ).lines
    assert formats.likely_day(key_lines, BISHKEK) == date(2026, 11, 25)
    assert formats.likely_day(key_lines[1:], BISHKEK) is None
    assert formats.likely_day([], BISHKEK) is None
