"""Connection pool and the mapping of database failures to domain retry semantics."""

import asyncio
from typing import Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tolem.core import errors
from tolem.db import codecs

# A PostgreSQL error class here means the transaction was rolled back and nothing committed,
# so rerunning is safe.
_RETRYABLE: Final = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# The database's own refusals to mix currencies (migration 0010). The statement failed, so
# nothing committed, and a repeat fails the same way: a final refusal, not a retry.
CURRENCY_CONSTRAINTS: Final = frozenset(
    {
        "fk__transfers__debit__currency__ledger_accounts",
        "fk__transfers__credit__currency__ledger_accounts",
        "tr__payments__currency",
    }
)
# No host of a multi-host DSN accepts writes (target_session_attrs=read-write): between a
# primary's death and a standby's promotion, or while every listed server is a standby.
NO_WRITABLE_HOST: Final = asyncpg.exceptions.TargetServerAttributeNotMatched
# Whatever else goes wrong below us, we cannot tell whether a commit happened.
_UNKNOWN_OUTCOME: Final = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    asyncio.TimeoutError,
    NO_WRITABLE_HOST,
)


def mask_dsn(dsn: str) -> str:
    """The DSN with its password replaced, for logs and messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def dsn_target(dsn: str) -> str:
    """Where a DSN points, without user or password: `host:port/database` (or the socket)."""
    parts = urlsplit(dsn)
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts:
        query = dict(part.partition("=")[::2] for part in parts.query.split("&") if part)
        hosts = query.get("host", "local socket")
    return f"{hosts}{parts.path or '/'}"


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Release hook that skips asyncpg's reset query.

    By default every release runs `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`,
    a round trip per request, as many as a check itself needs. Nothing run on pooled
    connections keeps session state (no session advisory locks, no SET without LOCAL, no
    LISTEN, no cursors outside a transaction), so there is nothing to undo; asyncpg still rolls
    back a transaction left open before it calls this hook.
    """


Pooler = Literal["none", "pgbouncer"]
# The startup parameters PgBouncer keeps per client and restores on whichever server
# connection runs that client's next transaction; it refuses a login that sends any other.
_POOLER_PARAMETERS: Final = ("application_name", "timezone")


def connect_options(pooler: Pooler) -> dict[str, Any]:
    """What every connection needs to work through `pooler`.

    In transaction pooling consecutive transactions of one client may run on different server
    connections, so a statement prepared under a name on one is unknown on the next: without
    the statement cache asyncpg sends each statement's Parse again with its Bind, in the same
    transaction.
    """
    return {"statement_cache_size": 0} if pooler == "pgbouncer" else {}


async def create_pool(dsn: str, *, size: int, deadline: float, pooler: Pooler = "none") -> asyncpg.Pool:
    """A pool whose sessions give up on their own before the request deadline passes.

    statement_timeout and lock_timeout sit below the deadline so that a stuck statement is
    ended by the server (rolling back) rather than abandoned mid-flight by the client. Behind
    PgBouncer they cannot travel as startup parameters; PgBouncer's connect_query sets them on
    its server connections instead (docs/deployment.md), and command_timeout still bounds
    every statement from this side.
    """
    statement_ms = max(int(deadline * 1000 * 0.8), 100)
    settings = {
        "application_name": "tolem",
        "statement_timeout": str(statement_ms),
        "lock_timeout": str(statement_ms),
        "idle_in_transaction_session_timeout": str(statement_ms * 2),
        "timezone": "UTC",
    }
    if pooler == "pgbouncer":
        settings = {name: settings[name] for name in _POOLER_PARAMETERS}
    return await asyncpg.create_pool(
        dsn,
        min_size=min(2, size),
        max_size=size,
        command_timeout=deadline,
        reset=_keep_session,
        init=codecs.install,
        server_settings=settings,
        **connect_options(pooler),
    )


def domain_error(exc: BaseException) -> Exception | None:
    """RetryableConflict, CurrencyRefused or TemporarilyUnavailable for a database failure;
    None for others."""
    if isinstance(exc, _RETRYABLE):
        return errors.RetryableConflict(type(exc).__name__)
    if (
        isinstance(exc, asyncpg.IntegrityConstraintViolationError)
        and getattr(exc, "constraint_name", None) in CURRENCY_CONSTRAINTS
    ):
        return errors.CurrencyRefused("the database refused to mix currencies")
    if isinstance(exc, _UNKNOWN_OUTCOME):
        return errors.TemporarilyUnavailable(type(exc).__name__)
    return None


def record_dict(record: Any) -> dict[str, Any]:
    """An asyncpg Record as a plain dict."""
    return dict(record.items())
