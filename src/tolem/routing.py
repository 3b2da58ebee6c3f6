"""Routing helpers shared by the admin and console sub-applications."""

from aiohttp import web


async def methods_elsewhere(request: web.Request, catch_all: str) -> set[str]:
    """The methods that the app's other routes take for this path: a catch-all route also
    receives known paths called with another method, which deserve 405 rather than 404."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.name == catch_all:
            continue
        _, methods = await resource.resolve(request)
        allowed |= methods
    return allowed
