"""Payme's wire details that need no server: timestamps, and the message catalogue."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tolem.core import errors
from tolem.protocols.payme import codes, wire

LANGUAGES = {"ru", "uz", "en", "ky"}


def test_timestamps_are_exact_milliseconds() -> None:
    """Known instants convert both ways without rounding; 0 stands for "never"."""
    assert wire.from_ms(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert wire.from_ms(1741611005123) == datetime(2025, 3, 10, 12, 50, 5, 123000, tzinfo=UTC)
    assert wire.to_ms(datetime(2025, 3, 10, 12, 50, 5, 123999, tzinfo=UTC)) == 1741611005123
    assert wire.to_ms(None) == 0
    assert wire.from_ms(wire.MAX_TIMESTAMP_MS) == datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


@given(st.integers(min_value=0, max_value=wire.MAX_TIMESTAMP_MS))
def test_timestamp_round_trip(value: int) -> None:
    """Every valid Payme Timestamp survives the trip to a datetime and back."""
    assert wire.to_ms(wire.from_ms(value)) == value


def test_to_ms_floors_sub_millisecond_parts() -> None:
    """A database time with microseconds is reported at its millisecond, the same every time."""
    moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=999)
    assert wire.to_ms(moment) == wire.to_ms(datetime(2026, 1, 1, tzinfo=UTC))


def test_every_error_speaks_four_languages() -> None:
    """Each error Payme can receive carries ru, uz, en and ky text, none of it empty."""
    every = [
        codes.not_post(),
        codes.parse_error(),
        codes.invalid_request("id"),
        codes.method_not_found("X"),
        codes.insufficient_privilege(),
        codes.system_error(),
        codes.wrong_amount(),
        codes.bad_account(),
        codes.transaction_not_found(),
        codes.cannot_perform(),
        codes.timed_out(),
        *(
            codes.from_domain(kind(""))
            for kind in (
                errors.MalformedCode,
                errors.UnknownCode,
                errors.AccountBlocked,
                errors.AmountTooSmall,
                errors.AmountTooLarge,
                errors.IdempotencyConflict,
                errors.PaymentNotFound,
                errors.WrongState,
                errors.InsufficientFunds,
                errors.ProviderDisabled,
            )
        ),
    ]
    for error in every:
        assert set(error.message) == LANGUAGES, error.code
        assert all(text.strip() for text in error.message.values()), error.code


def test_domain_errors_map_to_payme_codes() -> None:
    """Each core refusal has its Payme code; account errors name the `code` field."""
    table = {
        errors.MalformedCode: (-31050, "code"),
        errors.UnknownCode: (-31050, "code"),
        errors.AccountBlocked: (-31051, "code"),
        errors.AmountTooSmall: (-31001, "amount"),
        errors.AmountTooLarge: (-31001, "amount"),
        errors.IdempotencyConflict: (-31008, None),
        errors.PaymentNotFound: (-31003, None),
        errors.WrongState: (-31008, None),
        errors.InsufficientFunds: (-31007, None),
        errors.ProviderDisabled: (-32400, None),
    }
    for kind, (code, data) in table.items():
        error = codes.from_domain(kind(""))
        assert (error.code, error.data) == (code, data), kind
