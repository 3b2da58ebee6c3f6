"""TOLEM_BILLING_* pick the sink; a sink missing what it needs stops the CLI naming the variable."""

import pytest

from tests.billing.sinks.standins import SECRET
from tolem.billing.sinks import BillmanagerSink, WebhookSink, WhmcsSink, from_settings
from tolem.cli import main
from tolem.settings import Settings

_COMPLETE = {
    "webhook": {"TOLEM_BILLING_URL": "https://billing.example.kg/hook", "TOLEM_BILLING_SECRET": SECRET},
    "billmanager": {
        "TOLEM_BILLING_URL": "https://my.hoster.kg",
        "TOLEM_BILLING_LOGIN": "api",
        "TOLEM_BILLING_PASSWORD": "pw",
        "TOLEM_BILLING_PAYMETHOD": "7",
        "TOLEM_BILLING_CURRENCY_ID": "126",
    },
    "whmcs": {
        "TOLEM_BILLING_URL": "https://whmcs.hoster.kg",
        "TOLEM_BILLING_LOGIN": "ident",
        "TOLEM_BILLING_PASSWORD": "secret",
        "TOLEM_BILLING_PAYMETHOD": "elsom",
    },
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        if name.startswith("billing_"):
            monkeypatch.delenv(f"TOLEM_{name.upper()}", raising=False)


def test_no_sink_by_default() -> None:
    """Unset, TOLEM_BILLING_SINK is none and from_settings gives no sink."""
    assert Settings().billing_sink == "none"
    assert from_settings(Settings()) is None


@pytest.mark.parametrize(
    ("kind", "cls"), [("webhook", WebhookSink), ("billmanager", BillmanagerSink), ("whmcs", WhmcsSink)]
)
async def test_each_complete_configuration_builds_its_sink(
    monkeypatch: pytest.MonkeyPatch, kind: str, cls: type
) -> None:
    """A complete set of variables builds the named sink, labelled for metrics by its name."""
    monkeypatch.setenv("TOLEM_BILLING_SINK", kind)
    for name, value in _COMPLETE[kind].items():
        monkeypatch.setenv(name, value)
    sink = from_settings(Settings())
    assert isinstance(sink, cls)
    assert sink.name == kind
    await sink.close()


@pytest.mark.parametrize(
    ("kind", "missing"),
    [
        ("webhook", "TOLEM_BILLING_URL"),
        ("webhook", "TOLEM_BILLING_SECRET"),
        ("billmanager", "TOLEM_BILLING_PASSWORD"),
        ("billmanager", "TOLEM_BILLING_CURRENCY_ID"),
        ("whmcs", "TOLEM_BILLING_PAYMETHOD"),
        ("whmcs", "TOLEM_BILLING_LOGIN"),
    ],
)
def test_a_missing_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kind: str, missing: str
) -> None:
    """Any command exits 2 before touching a database, saying which variable the sink needs."""
    monkeypatch.setenv("TOLEM_BILLING_SINK", kind)
    for name, value in _COMPLETE[kind].items():
        if name != missing:
            monkeypatch.setenv(name, value)
    assert main(["provider", "list"]) == 2
    err = capsys.readouterr().err
    assert err == f"tolem: error: configuration: {missing} is required when TOLEM_BILLING_SINK={kind}\n"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("TOLEM_BILLING_SECRET", "not-a-whsec-secret", "TOLEM_BILLING_SECRET must be whsec_"),
        ("TOLEM_BILLING_SECRET", "whsec_c2hvcnQ=", "TOLEM_BILLING_SECRET must be whsec_"),
        ("TOLEM_BILLING_URL", "billing.example.kg/hook", "TOLEM_BILLING_URL must be an http"),
        ("TOLEM_BILLING_TIMEOUT", "0", "TOLEM_BILLING_TIMEOUT: "),
    ],
)
def test_a_malformed_setting_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str, says: str
) -> None:
    """A secret that is not whsec_ base64 of 24+ bytes, a URL without a scheme, a zero timeout: exit 2."""
    monkeypatch.setenv("TOLEM_BILLING_SINK", "webhook")
    for name, good in _COMPLETE["webhook"].items():
        monkeypatch.setenv(name, good)
    monkeypatch.setenv(variable, value)
    assert main(["provider", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tolem: error: configuration: {says}")
    assert value not in err or variable != "TOLEM_BILLING_SECRET"
