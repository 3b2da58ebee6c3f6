"""Payme's error codes, their localized messages, and the mapping from the core's DomainErrors.

Payme shows `message` to the payer in the language of the app, so every error carries Russian,
Uzbek and English (the three Payme asks for) and Kyrgyz (our customers' language). `data` names
the offending field: for account errors (-31050..-31099) Payme requires the `account` sub-field.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from tolem.core import errors
from tolem.core.model import PaymentState

Message = Mapping[str, str]

ACCOUNT_FIELD: Final = "code"
AMOUNT_FIELD: Final = "amount"

# Cancel reason Payme defines for "cancelled by timeout"; we use it for our own expiries too.
REASON_TIMEOUT: Final = 4


def _msg(ru: str, uz: str, en: str, ky: str) -> Message:
    return MappingProxyType({"ru": ru, "uz": uz, "en": en, "ky": ky})


class PaymeError(Exception):
    """One Payme error answer: code, localized message and the field it concerns."""

    def __init__(self, code: int, message: Message, data: str | None = None) -> None:
        super().__init__(code, message["en"])
        self.code = code
        self.message = message
        self.data = data

    def body(self) -> dict[str, object]:
        """The `error` object of the response."""
        error: dict[str, object] = {"code": self.code, "message": dict(self.message)}
        if self.data is not None:
            error["data"] = self.data
        return error


# --- JSON-RPC level ---------------------------------------------------------------------------

NOT_POST: Final = -32300
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INSUFFICIENT_PRIVILEGE: Final = -32504
SYSTEM_ERROR: Final = -32400

# --- Merchant API level -----------------------------------------------------------------------

WRONG_AMOUNT: Final = -31001
TRANSACTION_NOT_FOUND: Final = -31003
CANNOT_CANCEL: Final = -31007
CANNOT_PERFORM: Final = -31008
ACCOUNT_NOT_FOUND: Final = -31050
ACCOUNT_BLOCKED: Final = -31051
# Ours within Payme's account range: the account cannot take money in the provider's currency.
# Final, as every account error; Payme shows the message to the payer.
CURRENCY_REFUSED: Final = -31052

_NOT_POST_MSG: Final = _msg(
    "Метод запроса должен быть POST",
    "So'rov usuli POST bo'lishi kerak",
    "Request method must be POST",
    "Сурам POST ыкмасы менен жөнөтүлүшү керек",
)
_PARSE_MSG: Final = _msg(
    "Ошибка разбора JSON",
    "JSON tahlilida xatolik",
    "JSON parse error",
    "JSON талдоодо ката",
)
_INVALID_MSG: Final = _msg(
    "Неверный запрос: нет обязательного поля или тип поля неверен",
    "Noto'g'ri so'rov: majburiy maydon yo'q yoki maydon turi noto'g'ri",
    "Invalid request: a required field is missing or has the wrong type",
    "Туура эмес сурам: милдеттүү талаа жок же талаанын түрү туура эмес",
)
_METHOD_MSG: Final = _msg(
    "Метод не найден",
    "Metod topilmadi",
    "Method not found",
    "Ыкма табылган жок",
)
_PRIVILEGE_MSG: Final = _msg(
    "Недостаточно привилегий для выполнения метода",
    "Metodni bajarish uchun huquqlar yetarli emas",
    "Insufficient privileges to perform this method",
    "Бул ыкманы аткарууга укук жетишсиз",
)
_SYSTEM_MSG: Final = _msg(
    "Системная ошибка, повторите запрос позже",
    "Tizim xatosi, so'rovni keyinroq takrorlang",
    "System error, please retry later",
    "Системалык ката, сурамды кийинчерээк кайталаңыз",
)
_AMOUNT_MSG: Final = _msg(
    "Неверная сумма",
    "Noto'g'ri summa",
    "Invalid amount",
    "Сумма туура эмес",
)
_AMOUNT_SMALL_MSG: Final = _msg(
    "Сумма меньше минимальной",
    "Summa eng kam miqdordan kichik",
    "Amount is below the minimum",
    "Сумма эң аз чектен кичине",
)
_AMOUNT_LARGE_MSG: Final = _msg(
    "Сумма больше максимальной",
    "Summa eng ko'p miqdordan katta",
    "Amount is above the maximum",
    "Сумма эң көп чектен чоң",
)
_NOT_FOUND_MSG: Final = _msg(
    "Транзакция не найдена",
    "Tranzaksiya topilmadi",
    "Transaction not found",
    "Транзакция табылган жок",
)
_CANNOT_CANCEL_MSG: Final = _msg(
    "Невозможно отменить транзакцию: средства уже использованы",
    "Tranzaksiyani bekor qilib bo'lmaydi: mablag' allaqachon sarflangan",
    "The transaction cannot be cancelled: the funds have already been spent",
    "Транзакцияны жокко чыгарууга болбойт: каражат мурунтан эле колдонулган",
)
_CANNOT_PERFORM_MSG: Final = _msg(
    "Невозможно выполнить операцию для транзакции в её текущем состоянии",
    "Tranzaksiyaning joriy holatida amalni bajarib bo'lmaydi",
    "The operation cannot be performed in the transaction's current state",
    "Транзакциянын азыркы абалында операцияны аткарууга болбойт",
)
_TIMED_OUT_MSG: Final = _msg(
    "Время ожидания транзакции истекло, транзакция отменена",
    "Tranzaksiyani kutish vaqti tugadi, tranzaksiya bekor qilindi",
    "The transaction timed out and was cancelled",
    "Транзакциянын күтүү мөөнөтү бүттү, транзакция жокко чыгарылды",
)
_CONFLICT_MSG: Final = _msg(
    "Транзакция с этим id уже создана с другой суммой или другим счётом",
    "Ushbu id bilan tranzaksiya boshqa summa yoki boshqa hisob bilan yaratilgan",
    "A transaction with this id was already created with another amount or account",
    "Бул id менен транзакция башка сумма же башка эсеп менен түзүлгөн",
)
_ACCOUNT_NOT_FOUND_MSG: Final = _msg(
    "Лицевой счёт не найден",
    "Hisob topilmadi",
    "Account not found",
    "Эсеп табылган жок",
)
_MALFORMED_CODE_MSG: Final = _msg(
    "Неверный код оплаты: проверьте цифры",
    "To'lov kodi noto'g'ri: raqamlarni tekshiring",
    "Invalid payment code: please check the digits",
    "Төлөм коду туура эмес: сандарды текшериңиз",
)
_CURRENCY_REFUSED_MSG: Final = _msg(
    "Лицевой счёт не принимает платежи в этой валюте",
    "Hisob ushbu valyutadagi to'lovlarni qabul qilmaydi",
    "The account does not accept payments in this currency",
    "Эсеп бул валютадагы төлөмдөрдү кабыл албайт",
)
_ACCOUNT_BLOCKED_MSG: Final = _msg(
    "Лицевой счёт заблокирован",
    "Hisob bloklangan",
    "The account is blocked",
    "Эсеп бөгөттөлгөн",
)


def not_post() -> PaymeError:
    """-32300: anything but POST."""
    return PaymeError(NOT_POST, _NOT_POST_MSG)


def parse_error() -> PaymeError:
    """-32700: the body is not JSON."""
    return PaymeError(PARSE_ERROR, _PARSE_MSG)


def invalid_request(field: str) -> PaymeError:
    """-32600: a required field is missing or has the wrong type; `data` names it."""
    return PaymeError(INVALID_REQUEST, _INVALID_MSG, field)


def method_not_found(method: str) -> PaymeError:
    """-32601 with the method's name in `data`."""
    return PaymeError(METHOD_NOT_FOUND, _METHOD_MSG, method)


def insufficient_privilege() -> PaymeError:
    """-32504: wrong or missing credentials, or a caller outside the allow-list."""
    return PaymeError(INSUFFICIENT_PRIVILEGE, _PRIVILEGE_MSG)


def system_error() -> PaymeError:
    """-32400: we could not tell the outcome, or could not try; Payme repeats the call."""
    return PaymeError(SYSTEM_ERROR, _SYSTEM_MSG)


def wrong_amount() -> PaymeError:
    """-31001 for an amount that is not a positive integer we can hold."""
    return PaymeError(WRONG_AMOUNT, _AMOUNT_MSG, AMOUNT_FIELD)


def bad_account() -> PaymeError:
    """-31050 for an `account` that is not an object with a string `code`."""
    return PaymeError(ACCOUNT_NOT_FOUND, _MALFORMED_CODE_MSG, ACCOUNT_FIELD)


def transaction_not_found() -> PaymeError:
    """-31003."""
    return PaymeError(TRANSACTION_NOT_FOUND, _NOT_FOUND_MSG)


def cannot_perform(state: PaymentState | None = None, reason: int | None = None) -> PaymeError:
    """-31008; the message says "timed out" when that is why, so support sees it at once."""
    timed_out = state is PaymentState.VOIDED and reason == REASON_TIMEOUT
    return PaymeError(CANNOT_PERFORM, _TIMED_OUT_MSG if timed_out else _CANNOT_PERFORM_MSG)


def currency_refused() -> PaymeError:
    """-31052: the account or the deployment holds another currency than the provider's."""
    return PaymeError(CURRENCY_REFUSED, _CURRENCY_REFUSED_MSG, ACCOUNT_FIELD)


def timed_out() -> PaymeError:
    """-31008 for a CreateTransaction whose Payme time is already past the limit."""
    return PaymeError(CANNOT_PERFORM, _TIMED_OUT_MSG)


def from_domain(exc: errors.DomainError) -> PaymeError:
    """The Payme answer for a core refusal."""
    payment = exc.payment
    match exc:
        case errors.MalformedCode():
            return PaymeError(ACCOUNT_NOT_FOUND, _MALFORMED_CODE_MSG, ACCOUNT_FIELD)
        case errors.UnknownCode():
            return PaymeError(ACCOUNT_NOT_FOUND, _ACCOUNT_NOT_FOUND_MSG, ACCOUNT_FIELD)
        case errors.AccountBlocked():
            return PaymeError(ACCOUNT_BLOCKED, _ACCOUNT_BLOCKED_MSG, ACCOUNT_FIELD)
        case errors.CurrencyRefused():
            return currency_refused()
        case errors.AmountTooSmall():
            return PaymeError(WRONG_AMOUNT, _AMOUNT_SMALL_MSG, AMOUNT_FIELD)
        case errors.AmountTooLarge():
            return PaymeError(WRONG_AMOUNT, _AMOUNT_LARGE_MSG, AMOUNT_FIELD)
        case errors.IdempotencyConflict():
            # The id is taken, so this transaction cannot be created: -31008 says exactly that,
            # whereas -31001 / -31050 would claim the amount or the account itself is bad.
            return PaymeError(CANNOT_PERFORM, _CONFLICT_MSG)
        case errors.PaymentNotFound():
            return transaction_not_found()
        case errors.WrongState():
            return cannot_perform(
                payment.state if payment else None,
                payment.cancel_reason if payment else None,
            )
        case errors.InsufficientFunds():
            return PaymeError(CANNOT_CANCEL, _CANNOT_CANCEL_MSG)
        case _:
            # ProviderDisabled can only come from a race with `provider disable`; from then on
            # the provider gets 404, which Payme treats as -32400 too, so the answers agree.
            # Any refusal added to the core later is not known to be final here: retry.
            return system_error()
