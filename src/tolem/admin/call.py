"""What an admin handler is given (Call) and what it may answer besides its route's model (Answer)."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from tolem.admin.errors import ApiError
from tolem.settings import Settings

POOL_GETTER: Final[web.AppKey[Callable[[], asyncpg.Pool]]] = web.AppKey("admin_pool")
ADMIN_SETTINGS: Final = web.AppKey("admin_settings", Settings)
MAX_REF: Final = 64


@dataclass(frozen=True, slots=True)
class Call:
    """One admin request, parsed: the models its route declares, and the path's account id."""

    request: web.Request
    query: Any
    body: Any
    account_id: int | None

    def path(self, name: str) -> str:
        """A text parameter of the path (a billing id), checked like any other input."""
        value = self.request.match_info[name]
        if not 0 < len(value) <= MAX_REF or not value.isprintable():
            raise ApiError(400, "invalid", f"{name} must be 1 to {MAX_REF} printable characters", name)
        return value

    @property
    def pool(self) -> asyncpg.Pool:
        """The service's database pool."""
        return self.request.config_dict[POOL_GETTER]()

    @property
    def settings(self) -> Settings:
        """The deployment's settings."""
        return self.request.config_dict[ADMIN_SETTINGS]


@dataclass(frozen=True, slots=True)
class Answer:
    """A handler's answer with a status other than its route's (201 for an upsert that created)."""

    body: BaseModel
    status: int


Handler = Callable[[Call], Awaitable[BaseModel | Answer]]
