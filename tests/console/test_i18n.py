"""The console's three languages say the same things: no key missing in any, none unused; and
an operator reads the pages in the one chosen, or the browser's."""

import re
from pathlib import Path
from typing import get_args

from tests.console.conftest import Console
from tolem.billing.sink import EventType
from tolem.console import i18n
from tolem.console.panels import ACCOUNT_PANELS, PAGES
from tolem.db import outbox as outbox_db
from tolem.db import reconcile as reconcile_db
from tolem.db.operators import Action, Role

TEMPLATES = Path(i18n.__file__).parent / "templates"
SOURCES = Path(i18n.__file__).parent
_KEY_RE = re.compile(r"""\bt\(\s*["']([a-z_.]+)["']""")
_STATIC_KEY_RE = re.compile(
    r"""(?:PageError\(\s*\d{3},\s*|error=|hint = |"hint": |translator\([^)]*\)\()["']([a-z_.]+)["']"""
)


def used_keys() -> set[str]:
    """Keys the templates and handlers name literally, plus the ones built from values."""
    keys: set[str] = set()
    for template in TEMPLATES.rglob("*.html"):
        keys |= set(_KEY_RE.findall(template.read_text()))
    for source in SOURCES.glob("*.py"):
        text = source.read_text()
        keys |= set(_KEY_RE.findall(text)) | set(_STATIC_KEY_RE.findall(text))
    # `t("status_" ~ account.status)`: the prefix is not a key, its completions below are.
    keys = {k for k in keys if not k.endswith("_")}
    keys |= {f"status_{s}" for s in ("active", "blocked")}
    keys |= {f"state_{s}" for s in ("reserved", "credited", "voided", "reversed")}
    keys |= {f"origin_{s}" for s in ("issued", "imported")}
    keys |= {f"role_{r}" for r in Role}
    keys |= {f"action_{a}" for a in Action}
    keys |= {f"kind_{k}" for k in reconcile_db.KINDS}
    keys |= {f"outbox_{s}" for s in outbox_db.STATES}
    keys |= {f"event_{e}" for e in get_args(EventType)}
    keys |= {page.title for page in PAGES} | {panel.title for panel in ACCOUNT_PANELS}
    return keys


def test_every_language_has_the_same_keys() -> None:
    """Russian, English and Kyrgyz tables have exactly the same keys and the same placeholders."""
    for code, table in i18n.MESSAGES.items():
        assert set(table) == set(i18n.EN), code
        for key, text in table.items():
            assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", i18n.EN[key])), (
                code,
                key,
            )
            assert text.strip(), (code, key)


def test_every_key_used_exists_and_every_key_is_used() -> None:
    """Each key a page or handler names is in the tables, and the tables hold nothing unused."""
    used = used_keys()
    assert used - set(i18n.EN) == set()
    assert set(i18n.EN) - used == set()


def test_negotiation() -> None:
    """Accept-Language picks the first language the console speaks, else Russian."""
    assert i18n.negotiate("ky-KG,ru;q=0.8") == "ky"
    assert i18n.negotiate("de, EN-us;q=0.5") == "en"
    assert i18n.negotiate("") == "ru"
    assert i18n.known("ky") == "ky" and i18n.known("kz") is None


class TestLanguages:
    async def test_switching_language_keeps_the_page(self, support: Console) -> None:
        """The language links switch the whole page and come back to where the operator was."""
        answer = await support.get("/ops/lang/en?next=%2Fops%2Fproviders", follow=False)
        assert answer.status == 303 and answer.headers["Location"] == "/ops/providers"
        english = await support.get("/ops/providers")
        assert '<html lang="en">' in english.text and ">Providers<" in english.text
        await support.get("/ops/lang/ky?next=%2Fops%2F")
        kyrgyz = await support.get("/ops/")
        assert '<html lang="ky">' in kyrgyz.text and "Издөө" in kyrgyz.text
        assert kyrgyz.headers["Content-Language"] == "ky"

    async def test_browser_language_is_the_default(self, console: Console) -> None:
        """Without a choice made, the browser's preferred language is used (Russian if none fits)."""
        english = await console.get("/ops/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
        assert '<html lang="en">' in english.text and "Log in" in english.text
        other = await console.get("/ops/login", headers={"Accept-Language": "de-DE"})
        assert '<html lang="ru">' in other.text

    async def test_unknown_language_and_foreign_next(self, support: Console) -> None:
        """An unknown language is a 404; a `next` outside the console goes home."""
        assert (await support.get("/ops/lang/fr")).status == 404
        answer = await support.get("/ops/lang/en?next=https://evil.example/", follow=False)
        assert answer.headers["Location"] == "/ops/"
