"""Screenshots of the operator console, taken by Debian's headless Chromium through Playwright,
against a real `tolem serve` on a throwaway cluster filled through the real gateway.

    python -m bench.screens [--out docs/console]

Prints how long each page took to load in the browser (navigation start to load event) and
writes one PNG per page. The browser tests (tests/console/test_browser.py) launch Chromium the
same way, with `launch_chromium`.
"""

import argparse
import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg
from playwright.async_api import Browser, Page, async_playwright

from bench.harness import Database, Server
from tolem.db import accounts as account_db
from tolem.db import operators as operator_db
from tolem.db import providers as provider_db
from tolem.db.operators import Role
from tolem.protocols.passwords import hash_password

# Debian's package; Playwright's own browser download is never used (and cannot be, offline).
CHROMIUM_CANDIDATES: Final = ("/usr/bin/chromium", "/usr/lib/chromium/chromium")
# As root Chromium refuses its sandbox; the rest stops its background connections (updates,
# sync, QUIC probes), which a closed network refuses many at a time and only slow it down.
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
DEMO_PASSWORD: Final = "demo password 2026"  # noqa: S105 - the throwaway demo operators'
# Demo and test operators hash cheaply; the CLI stores the people's cost (tolem.protocols.passwords).
DEMO_COST: Final = (2**10, 8, 1)


def chromium_path() -> str | None:
    """The installed Chromium executable, or None."""
    for candidate in (os.environ.get("TOLEM_CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def launch_options() -> dict[str, Any]:
    """What Playwright's chromium.launch takes to run Debian's Chromium headless. Each launch
    gets a fresh profile (Playwright makes one in a temporary directory and removes it)."""
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("no chromium: apt-get install chromium chromium-driver")
    return {"executable_path": executable, "headless": True, "args": list(CHROMIUM_ARGS)}


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    """Headless Chromium from Debian, driven by Playwright's async API."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(**launch_options())
        try:
            yield browser
        finally:
            await browser.close()


async def seed_demo(dsn: str) -> dict[str, Any]:
    """Providers, accounts and operators that look like a working day's."""
    conn = await asyncpg.connect(dsn)
    try:
        common: dict[str, Any] = {
            "currency": "KGS",
            "allow_ips": ["127.0.0.0/8"],
            "login": None,
            "password_hash": None,
            "secret": None,
            "service_id": None,
            "min_amount_minor": 1000,
            "max_amount_minor": 5_000_000,
            "timezone": None,
        }
        await provider_db.add(conn, name="elsom", protocol="osmp", **common)
        await provider_db.add(conn, name="pay24", protocol="osmp", **common)
        await provider_db.add(
            conn,
            name="payme",
            protocol="payme",
            **{
                **common,
                "password_hash": hash_password("payme-key", cost=DEMO_COST),
                "timezone": "Asia/Tashkent",
            },
        )
        asan_id, asan_code = await account_db.create_account(
            conn,
            email="asan@example.kg",
            name="Асанов Асан Асанович",
            currency="KGS",
            services=["asan.kg", "vps-1042.tolem.kg"],
        )
        aigul_code = await account_db.add_payer(conn, asan_id, "Асанова Айгуль")
        aida_id, aida_code = await account_db.create_account(
            conn,
            email="office@bekova.kg",
            name="ОсОО «Бекова и партнёры»",
            currency="KGS",
            services=["bekova.kg"],
        )
        await account_db.create_account(
            conn, email="office@bekova.kg", name="Бекова Аида (личный)", currency="KGS", services=["aida.kg"]
        )
        for name, role in (("anna", Role.ADMIN), ("bolot", Role.SUPPORT)):
            await operator_db.add_operator(conn, name, role, hash_password(DEMO_PASSWORD, cost=DEMO_COST))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return {"asan": (asan_id, asan_code, aigul_code), "aida": (aida_id, aida_code)}


async def gateway_day(base_url: str, accounts: dict[str, Any]) -> None:
    """A morning's calls through the real OSMP gateway: checks, pays, a retry, a refusal, a cancel."""
    _, asan_code, aigul_code = accounts["asan"]
    _, aida_code = accounts["aida"]
    calls = [
        ("elsom", "check", "3301001", asan_code, "500.00"),
        ("elsom", "pay", "3301001", asan_code, "500.00"),
        ("elsom", "pay", "3301001", asan_code, "500.00"),
        ("pay24", "check", "9100077", aigul_code, "1200.00"),
        ("pay24", "pay", "9100077", aigul_code, "1200.00"),
        ("elsom", "pay", "3301002", asan_code, "75000.00"),
        ("elsom", "pay", "3301003", aida_code, "15750.50"),
        ("pay24", "pay", "9100078", aida_code, "300.00"),
        ("pay24", "cancel", "9100078", None, None),
    ]
    async with aiohttp.ClientSession() as session:
        for provider, command, txn, code, amount in calls:
            params = {"command": command, "txn_id": txn}
            if code is not None:
                params |= {"account": code, "sum": str(amount), "txn_date": "20261202093000"}
            async with session.get(f"{base_url}/gw/{provider}", params=params) as response:
                await response.read()


async def log_in(page: Page, base_url: str, name: str, password: str = DEMO_PASSWORD) -> None:
    """Fills and sends the login form; returns on the console's home page."""
    await page.goto(f"{base_url}/ops/")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base_url}/ops/")


async def load_ms(page: Page) -> float:
    """How long the page now shown took, from navigation start to its load event."""
    timing = await page.evaluate(
        "() => { const t = performance.getEntriesByType('navigation')[0];"
        " return t.loadEventEnd - t.startTime; }"
    )
    return round(float(timing), 1)


async def shoot(out: Path) -> list[tuple[str, float]]:
    """Runs the whole scene and writes the screenshots; the load time of each page."""
    database = await Database.create()
    server: Server | None = None
    figures: list[tuple[str, float]] = []
    try:
        accounts = await seed_demo(database.dsn)
        server = Server.tolem(database.dsn, TOLEM_TIMEZONE="Asia/Bishkek")
        await server.start()
        await gateway_day(server.url, accounts)
        # The journal writer flushes in the background; give it its interval before looking.
        await asyncio.sleep(1.5)
        async with launch_chromium() as browser:
            context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="ru-RU")
            page = await context.new_page()
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await page.goto(f"{server.url}/ops/login")
            await page.screenshot(path=out / "login.png")
            figures.append(("login", await load_ms(page)))
            await log_in(page, server.url, "anna")
            asan_id = accounts["asan"][0]
            await page.fill("#q", "asan@example.kg")
            await page.press("#q", "Enter")
            await page.wait_for_url(f"{server.url}/ops/accounts/{asan_id}")
            first = page.locator("tbody.payment details").first
            await first.locator("summary").click()
            await page.screenshot(path=out / "account.png", full_page=True)
            figures.append(("account", await load_ms(page)))
            await page.click("text=Заблокировать счёт")
            await page.locator('[data-testid="status"]', has_text="заблокирован").wait_for()
            await page.locator("#actions").scroll_into_view_if_needed()
            await page.screenshot(path=out / "account-blocked.png", full_page=True)
            await page.goto(f"{server.url}/ops/search?q=office@bekova.kg")
            await page.screenshot(path=out / "search.png")
            figures.append(("search (two accounts)", await load_ms(page)))
            for name in ("providers", "today"):
                await page.goto(f"{server.url}/ops/{name}")
                await page.screenshot(path=out / f"{name}.png")
                figures.append((name, await load_ms(page)))
            await page.goto(f"{server.url}/ops/lang/en?next=%2Fops%2Ftoday")
            await page.screenshot(path=out / "today-en.png")
            await page.goto(f"{server.url}/ops/lang/ky?next=%2Fops%2Faccounts%2F{asan_id}")
            await page.screenshot(path=out / "account-ky.png")
            await context.close()
    finally:
        if server is not None:
            server.stop()
        await database.close()
    return figures


def main() -> None:
    """Entry point: `python -m bench.screens`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/console"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    figures = asyncio.run(shoot(args.out))
    for name, milliseconds in figures:
        print(f"{name:<24} {milliseconds:8.1f} ms to load")
    print(f"screenshots in {args.out} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
