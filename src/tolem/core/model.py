"""Domain values passed between adapters, the service and the store. No I/O here."""

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network
from typing import Any, Final

from tolem.core.money import format_amount

# The longest address SMTP can carry (RFC 5321's path limit less its angle brackets).
MAX_EMAIL: Final = 254
_EMAIL_RE: Final = re.compile(r"[^@\s]+@[^@\s]+")


class PaymentState(enum.StrEnum):
    """Where a payment is in its life. Only `credited` holds money on the customer's balance."""

    RESERVED = "reserved"
    CREDITED = "credited"
    VOIDED = "voided"
    REVERSED = "reversed"


class AccountStatus(enum.StrEnum):
    """An account's status, the words of the accounts.status CHECK constraint."""

    ACTIVE = "active"  # accepts payments
    BLOCKED = "blocked"  # refuses new payments; repeats of earlier ones still replay


def is_email(text: str) -> bool:
    """Whether `text` (already stripped) is taken as an account's email address."""
    return len(text) <= MAX_EMAIL and _EMAIL_RE.fullmatch(text) is not None


class WireProtocol(enum.StrEnum):
    """Wire protocols a provider can speak."""

    OSMP = "osmp"
    PAYME = "payme"
    CLICK = "click"


@dataclass(frozen=True, slots=True)
class Provider:
    """One aggregator connection as the gateway sees it (secrets included: never log this)."""

    id: int
    name: str
    protocol: WireProtocol
    enabled: bool
    allow_ips: tuple[IPv4Network | IPv6Network, ...]
    login: str | None
    password_hash: str | None = field(repr=False)
    secret: str | None = field(repr=False)
    service_id: str | None
    min_amount_minor: int | None
    max_amount_minor: int | None
    currency: str
    timezone: str | None


def shown_settings(provider: Provider) -> dict[str, Any]:
    """A provider's settings as operators see them: secrets only as present or absent."""
    return {
        "name": provider.name,
        "protocol": str(provider.protocol),
        "enabled": provider.enabled,
        "gateway": f"/gw/{provider.name}",
        "allow_ips": [str(n) for n in provider.allow_ips],
        "login": provider.login,
        "has_password": provider.password_hash is not None,
        "has_secret": provider.secret is not None,
        "service_id": provider.service_id,
        "min_amount": None if provider.min_amount_minor is None else format_amount(provider.min_amount_minor),
        "max_amount": None if provider.max_amount_minor is None else format_amount(provider.max_amount_minor),
        "currency": provider.currency,
        "timezone": provider.timezone,
    }


@dataclass(frozen=True, slots=True)
class Payment:
    """A stored payment with the code it was paid to."""

    id: int
    provider_id: int
    external_id: str
    account_id: int
    payer_id: int
    payment_code: str
    amount_minor: int
    currency: str
    state: PaymentState
    provider_time: datetime | None
    created_at: datetime
    credited_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: int | None


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """What a money operation returns: the payment, and whether this call only replayed it."""

    payment: Payment
    replayed: bool


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A payable code: whose it is, without the balance."""

    account_id: int
    payer_id: int
    payer_name: str
    payment_code: str
    # The account's currency: a provider of another currency may not pay it.
    currency: str


@dataclass(frozen=True, slots=True)
class PayCommand:
    """Credit (or, two-phase, reserve) `amount_minor` to `payment_code`, once per external id."""

    external_id: str
    payment_code: str
    amount_minor: int
    provider_time: datetime | None = None
    provider_time_raw: str | None = None
