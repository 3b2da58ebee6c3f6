"""Deployment settings from the environment (prefix TOLEM_). Built once in main() and passed in."""

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Network = IPv4Network | IPv6Network


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
