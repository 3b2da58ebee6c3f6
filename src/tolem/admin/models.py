"""Bodies and query strings of the admin API. The OpenAPI document is generated from these.

Requests forbid unknown fields, so a typo (`emial=`) is a 400 naming the field, never a
silently ignored filter. Amounts go out twice: integer minor units for programs and a decimal
string for people; nothing here is a float.
"""

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from tolem.core.errors import MalformedCode
from tolem.core.model import MAX_EMAIL, is_email
from tolem.core.payment_codes import MAX_CODE_LENGTH, validate_code


def _code(value: str) -> str:
    try:
        return validate_code(value)
    except MalformedCode as exc:
        raise ValueError("malformed payment code") from exc


def _email(value: str) -> str:
    value = value.strip()
    if not is_email(value):
        raise ValueError("not an email address")
    return value


def _printable(value: str) -> str:
    value = value.strip()
    if not value or not value.isprintable():
        raise ValueError("must be printable text")
    return value


PaymentCode = Annotated[str, Field(max_length=MAX_CODE_LENGTH + 16), AfterValidator(_code)]
Email = Annotated[str, Field(max_length=MAX_EMAIL), AfterValidator(_email)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
Service = Annotated[str, Field(min_length=1, max_length=253), AfterValidator(_printable)]
BillingRef = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_printable)]
ProviderName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
Txn = Annotated[str, Field(min_length=1, max_length=64)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- requests ---------------------------------------------------------------------------------


class AccountCreate(_Request):
    """A new account with its first payer (and so its first payment code)."""

    email: Email
    name: Name
    services: list[Service] = Field(default_factory=list, max_length=50)
    payment_code: PaymentCode | None = Field(
        default=None,
        description="An existing code from an older billing; omitted: a new code is issued.",
    )


class PayerCreate(_Request):
    """A new payer for an account; the name defaults to the account's."""

    name: Name | None = None


class AccountBind(_Request):
    """The account of a billing client: created on the first call, updated on the next ones."""

    email: Email
    name: Name
    services: list[Service] = Field(default_factory=list, max_length=50, description="Added; none removed.")


class PayerBind(_Request):
    """A payer of a billing client, created once; the name defaults to the account's."""

    name: Name | None = None


class LookupQuery(_Request):
    """Exactly one of code, email (case-blind), service name (case-blind) or billing client id."""

    code: PaymentCode | None = None
    email: Annotated[str, Field(min_length=1, max_length=254)] | None = None
    service: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    ref: BillingRef | None = Field(
        default=None, description="The billing's client id (accounts.external_ref)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> "LookupQuery":
        given = [k for k in ("code", "email", "service", "ref") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of code, email, service, ref")
        return self


class EventsQuery(_Request):
    """The pull feed: pass the previous page's next_after to continue."""

    after: str | None = Field(
        default=None, max_length=64, description="Opaque cursor; omitted: from the start."
    )
    limit: int = Field(default=100, ge=1, le=1000)


class PageQuery(_Request):
    """Newest first; to page on, pass the previous page's next_before."""

    limit: int = Field(default=50, ge=1, le=500)
    before: int | None = Field(default=None, ge=1)


class JournalQuery(PageQuery):
    """Journal filters; times without an offset are read in TOLEM_TIMEZONE."""

    provider: ProviderName | None = None
    txn: Txn | None = None
    code: PaymentCode | None = Field(default=None, description="Matched by its masked form.")
    since: datetime | None = None
    until: datetime | None = Field(default=None, description="Exclusive.")


# --- responses --------------------------------------------------------------------------------


class Payer(_Response):
    """A payer and its payment code."""

    id: int
    name: str
    payment_code: str
    origin: Literal["issued", "imported"]
    created_at: datetime
    external_ref: str | None = Field(description="The billing's payer (profile) id, when bound.")


class Payment(_Response):
    """A payment as support sees it."""

    id: int
    provider: str
    txn: str = Field(description="The provider's transaction id.")
    payment_code: str
    amount_minor: int
    amount: str = Field(description="The same amount as a decimal string in major units.")
    currency: str
    state: Literal["reserved", "credited", "voided", "reversed"]
    created_at: datetime


class Account(_Response):
    """An account with its balance, payers and codes, services and latest payments."""

    id: int
    email: str
    name: str
    status: Literal["active", "blocked"]
    balance_minor: int
    balance: str
    currency: str
    created_at: datetime
    payers: list[Payer]
    services: list[str]
    latest_payments: list[Payment]
    external_ref: str | None = Field(description="The billing's client id, when bound.")


class AccountList(_Response):
    """Accounts matching a lookup (an email or service may belong to several)."""

    accounts: list[Account]


class AccountStatus(_Response):
    """An account's status after a block or unblock."""

    account_id: int
    status: Literal["active", "blocked"]


class PayerCreated(_Response):
    """The payer just added and its new payment code."""

    account_id: int
    payment_code: str


class AccountBound(_Response):
    """The account bound to a billing client id and its first payer's code."""

    account_id: int
    external_ref: str
    payment_code: str
    created: bool


class PayerBound(_Response):
    """The payer bound to a billing payer id and its payment code (the same on every repeat)."""

    account_id: int
    external_ref: str
    payer_ref: str
    payment_code: str
    created: bool


class FeedEvent(_Response):
    """A credit, reversal or void as the billing applies it; `id` is the same on every read."""

    id: UUID
    type: Literal["payment.credited", "payment.reversed", "payment.voided"]
    payment_id: int
    account_id: int
    account_ref: str | None = Field(description="The billing's client id of the account, when bound.")
    payer_ref: str | None = Field(description="The billing's payer id, when bound.")
    payment_code: str
    provider: str
    txn: str = Field(description="The provider's transaction id.")
    amount_minor: int
    amount: str
    currency: str
    occurred_at: datetime
    created_at: datetime


class EventPage(_Response):
    """Events in feed order; pass next_after as `after` for the next page (the same when none)."""

    items: list[FeedEvent]
    next_after: str | None


class PaymentPage(_Response):
    """A page of payments; next_before is null on the last page."""

    items: list[Payment]
    next_before: int | None


class Provider(_Response):
    """A provider's configuration; secrets only as present or absent."""

    name: str
    protocol: str
    enabled: bool
    gateway: str
    allow_ips: list[str]
    login: str | None
    has_password: bool
    has_secret: bool
    service_id: str | None
    min_amount: str | None
    max_amount: str | None
    currency: str
    timezone: str | None


class ProviderList(_Response):
    """Every provider."""

    providers: list[Provider]


class JournalEntry(_Response):
    """One gateway call and our answer, codes masked."""

    id: int
    received_at: datetime
    provider: str
    remote_addr: str | None
    method: str
    command: str
    txn: str | None
    code_masked: str | None
    result: str | None
    http_status: int
    response_body: str | None
    duration_us: int
    request_id: str | None
    details: dict[str, Any]


class JournalPage(_Response):
    """A page of journal entries, newest first; next_before is null on the last page."""

    items: list[JournalEntry]
    next_before: int | None


class ErrorDetail(_Response):
    """What went wrong; `field` names the parameter or body field at fault, when one is."""

    code: str
    message: str
    field: str | None = None


class Error(_Response):
    """Every error answer of the admin API."""

    error: ErrorDetail
