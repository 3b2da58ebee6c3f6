"""Deployment settings from the environment (prefix TOLEM_). Built once in main() and passed in."""

import base64
import binascii
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Network = IPv4Network | IPv6Network
BillingSink = Literal["none", "webhook", "billmanager", "whmcs"]
# WHMCS reads AddTransaction's date in the installation's own localisation format.
WhmcsDateFormat = Literal["DD/MM/YYYY", "DD.MM.YYYY", "DD-MM-YYYY", "MM/DD/YYYY", "YYYY/MM/DD", "YYYY-MM-DD"]

# What each billing sink cannot work without, named as the operator sets it.
_SINK_NEEDS: dict[str, tuple[str, ...]] = {
    "webhook": ("billing_url", "billing_secret"),
    "billmanager": (
        "billing_url",
        "billing_login",
        "billing_password",
        "billing_paymethod",
        "billing_currency_id",
    ),
    "whmcs": ("billing_url", "billing_login", "billing_password", "billing_paymethod"),
}


class Settings(BaseSettings):
    """Every knob the service reads; see README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="TOLEM_", extra="ignore")

    database_url: SecretStr | None = None
    # What sits between us and PostgreSQL: nothing, or PgBouncer in transaction pooling mode.
    database_pooler: Literal["none", "pgbouncer"] = "none"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_format: Literal["json", "console"] | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    trusted_proxies: Annotated[tuple[Network, ...], NoDecode] = ()
    currency: str = Field(default="KGS", pattern=r"^[A-Z]{3}$")
    timezone: str = "Asia/Bishkek"
    admin_token: SecretStr | None = None
    request_deadline: float = Field(default=5.0, gt=0, le=55)
    # Eight connections saturate PostgreSQL on two cores; more only queue inside it.
    pool_size: int = Field(default=8, ge=1, le=200)
    # How stale a provider's configuration may be in a running process (disable, limits).
    provider_cache_seconds: float = Field(default=2.0, ge=0)
    # Where the private cluster lives when no database URL is given; unset, a place per user
    # (tolem.db.embedded.default_data_dir), never one per working directory.
    data_dir: str | None = None
    # The operator console under /ops/ (operators log in with their own passwords).
    ops_console: bool = True
    # Where credits, reversals and voids are delivered from the outbox (tolem.billing.sinks).
    billing_sink: BillingSink = "none"
    billing_url: str | None = None
    # The webhook's signing secret, `whsec_` and base64, shared with the receiver.
    billing_secret: SecretStr | None = None
    # BILLmanager authinfo user and password; WHMCS API credential identifier and secret.
    billing_login: str | None = None
    billing_password: SecretStr | None = None
    # BILLmanager payment method id; WHMCS payment method (gateway) in its system name.
    billing_paymethod: str | None = None
    billing_currency_id: str | None = None
    billing_date_format: WhmcsDateFormat = "DD/MM/YYYY"
    billing_timeout: float = Field(default=10.0, gt=0, le=120)
    # Run the billing dispatcher inside `tolem serve` (once, in the parent process).
    deliver_in_serve: bool = False
    # An event the billing has not taken this long after it was queued is dead-lettered.
    deliver_give_up_hours: float = Field(default=24.0, gt=0)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _billing_complete(self) -> Self:
        # A sink missing a setting would fail every delivery; refusing to start says which one.
        for field in _SINK_NEEDS.get(self.billing_sink, ()):
            value = getattr(self, field)
            if value is None or not (value.get_secret_value() if isinstance(value, SecretStr) else value):
                sink = self.billing_sink
                raise _billing_error(f"TOLEM_{field.upper()} is required when TOLEM_BILLING_SINK={sink}")
        if self.billing_sink == "none":
            return self
        url = self.billing_url or ""
        if not url.startswith(("https://", "http://")) or len(url) < 10:
            raise _billing_error("TOLEM_BILLING_URL must be an http:// or https:// address")
        if self.billing_sink == "webhook" and not _is_webhook_secret(self.billing_secret):
            raise _billing_error("TOLEM_BILLING_SECRET must be whsec_ followed by base64 (at least 24 bytes)")
        return self


def _billing_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("billing_setting", message)


def _is_webhook_secret(secret: SecretStr | None) -> bool:
    text = secret.get_secret_value() if secret is not None else ""
    if not text.startswith("whsec_"):
        return False
    try:
        key = base64.b64decode(text.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        return False
    # Standard Webhooks asks for 24 to 64 random bytes.
    return len(key) >= 24
