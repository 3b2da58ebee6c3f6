"""What every console answer carries: strict headers, static files before login, 404 and 405
pages, the switch that mounts nothing, and logins counted in metrics."""

import re
from typing import Any

from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from tests.console.conftest import ADMIN, ClientMaker, Console
from tolem.app import create_app
from tolem.settings import Settings


class TestProtection:
    async def test_pages_forbid_framing_scripts_from_elsewhere_and_caching(self, support: Console) -> None:
        """Every page carries a strict CSP, no framing, no sniffing, and is never cached."""
        for path in ("/ops/", "/ops/login", "/ops/providers", "/ops/nothing-here"):
            page = await support.get(path)
            assert "default-src 'none'" in page.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
            assert page.headers["X-Frame-Options"] == "DENY"
            assert page.headers["X-Content-Type-Options"] == "nosniff"
            assert page.headers["Cache-Control"] == "no-store"

    async def test_style_and_script_are_served_without_login(self, console: Console) -> None:
        """The style sheet and script are served before login (the login form needs them), cacheable."""
        css = await console.get("/ops/static/ops.css", follow=False)
        js = await console.get("/ops/static/ops.js", follow=False)
        assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
        assert js.status == 200 and "data-confirm" in js.text
        assert "Cache-Control" not in css.headers

    async def test_unknown_path_and_wrong_method(self, support: Console) -> None:
        """An unknown console path is a 404 page; GET on a form's target is a 405; /ops goes to /ops/."""
        assert (await support.get("/ops/nothing-here")).status == 404
        assert (await support.get("/ops/accounts/1/block")).status == 405
        assert (await support.get("/ops", follow=False)).headers["Location"] == "/ops/"

    async def test_console_can_be_switched_off(self, aiohttp_client: ClientMaker, database_url: str) -> None:
        """TOLEM_OPS_CONSOLE=false mounts nothing: /ops/ is an ordinary 404."""
        client = await aiohttp_client(
            create_app(Settings(database_url=SecretStr(database_url), ops_console=False))
        )
        async with client.get("/ops/login") as response:
            assert response.status == 404
            assert "csrf" not in await response.text()

    async def test_logins_are_counted_in_metrics(
        self, console: Console, client: TestClient[Any, Any]
    ) -> None:
        """/metrics counts console logins by outcome."""
        await console.login(ADMIN, "wrong password!")
        await console.login(ADMIN)
        async with client.get("/metrics") as response:
            body = await response.text()
        assert re.search(r'tolem_ops_logins_total\{outcome="ok"\} [1-9]', body)
        assert re.search(r'tolem_ops_logins_total\{outcome="refused"\} [1-9]', body)
