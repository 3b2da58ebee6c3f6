"""Pages of their own that other parts of tolem add to the console (tolem.console.panels)."""

from typing import Any

from aiohttp import web

from tolem.console.panels import Page
from tolem.console.web import PageError, operator, pool, render, settings
from tolem.db import operators as operator_db


def page_view(page: Page) -> Any:
    """The handler of a page listed in tolem.console.panels.PAGES."""

    async def view(request: web.Request) -> web.StreamResponse:
        if page.role is operator_db.Role.ADMIN and operator(request).role is not operator_db.Role.ADMIN:
            raise PageError(403, "error_admin_only")
        async with pool(request).acquire() as conn:
            data = await page.load(conn, settings(request))
        return render(request, page.template, data)

    return view
