"""The billing receivers, one module each, and the one that TOLEM_BILLING_SINK names.

webhook.py     a signed POST per event (Standard Webhooks), for a billing of one's own
billmanager.py payment.add + payment.setpaid in BILLmanager (ISPsystem)
whmcs.py       AddTransaction to the client's credit in WHMCS
"""

from pydantic import SecretStr

from tolem.billing.sink import Sink
from tolem.billing.sinks.billmanager import BillmanagerSink
from tolem.billing.sinks.webhook import WebhookSink
from tolem.billing.sinks.whmcs import WhmcsSink
from tolem.settings import Settings

__all__ = ["BillmanagerSink", "WebhookSink", "WhmcsSink", "from_settings"]


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def from_settings(settings: Settings) -> Sink | None:
    """The configured sink, or None when TOLEM_BILLING_SINK is none (Settings checked the rest)."""
    url = settings.billing_url or ""
    timeout = settings.billing_timeout
    if settings.billing_sink == "webhook":
        return WebhookSink(url, _secret(settings.billing_secret), timeout=timeout)
    if settings.billing_sink == "billmanager":
        return BillmanagerSink(
            url,
            settings.billing_login or "",
            _secret(settings.billing_password),
            paymethod=settings.billing_paymethod or "",
            currency_id=settings.billing_currency_id or "",
            timeout=timeout,
        )
    if settings.billing_sink == "whmcs":
        return WhmcsSink(
            url,
            settings.billing_login or "",
            _secret(settings.billing_password),
            paymentmethod=settings.billing_paymethod or "",
            date_format=settings.billing_date_format,
            timezone=settings.timezone,
            timeout=timeout,
        )
    return None
