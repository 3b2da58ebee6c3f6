"""Console operators in SQL: the people, their sessions, login throttling, and their actions."""

import enum
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg


class Role(enum.StrEnum):
    """What an operator may do in the console."""

    SUPPORT = "support"
    ADMIN = "admin"


class Action(enum.StrEnum):
    """What the record of operator actions can say (the schema's own list)."""

    LOGIN = "login"
    LOGOUT = "logout"
    VIEW = "account.view"
    BLOCK = "account.block"
    UNBLOCK = "account.unblock"
    ADD_PAYER = "payer.add"


class OperatorNotFound(LookupError):
    """No operator with that name."""


class OperatorExists(ValueError):
    """An operator with that name exists already."""


@dataclass(frozen=True, slots=True)
class Operator:
    """An operator as the console and the CLI show it (never the password hash)."""

    id: int
    name: str
    role: Role
    enabled: bool
    created_at: datetime
    password_changed_at: datetime


@dataclass(frozen=True, slots=True)
class SessionOperator:
    """The operator behind a live session."""

    session_id: int
    operator_id: int
    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class ActionView:
    """One line of the record of operator actions."""

    id: int
    acted_at: datetime
    operator: str
    action: Action
    account_id: int | None
    remote_addr: str | None
    details: dict[str, Any]


_OPERATOR_COLUMNS: Final = "id, name, role, enabled, created_at, password_changed_at"


def _operator(row: Any) -> Operator:
    values = dict(row.items())
    values["role"] = Role(values["role"])
    return Operator(**values)


async def add_operator(conn: asyncpg.Connection, name: str, role: Role, password_hash: str) -> Operator:
    """A new, enabled operator."""
    try:
        row = await conn.fetchrow(
            f"INSERT INTO operators (name, role, password_hash) VALUES ($1, $2, $3) "
            f"RETURNING {_OPERATOR_COLUMNS}",
            name,
            str(role),
            password_hash,
        )
    except asyncpg.UniqueViolationError as exc:
        raise OperatorExists(name) from exc
    return _operator(row)


async def list_operators(conn: asyncpg.Connection) -> list[Operator]:
    """Every operator, by name."""
    rows = await conn.fetch(f"SELECT {_OPERATOR_COLUMNS} FROM operators ORDER BY name")
    return [_operator(r) for r in rows]


async def credentials(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> tuple[Operator, str] | None:
    """An enabled operator and their password hash, or None (unknown or disabled)."""
    row = await conn.fetchrow(
        f"SELECT {_OPERATOR_COLUMNS}, password_hash FROM operators WHERE name = $1 AND enabled",
        name,
    )
    if row is None:
        return None
    values = dict(row.items())
    password_hash = values.pop("password_hash")
    values["role"] = Role(values["role"])
    return Operator(**values), str(password_hash)


async def _change(conn: asyncpg.Connection, name: str, assignments: str, *args: Any, revoke: bool) -> None:
    async with conn.transaction():
        operator_id = await conn.fetchval(
            f"UPDATE operators SET {assignments}, updated_at = now() WHERE name = $1 RETURNING id",
            name,
            *args,
        )
        if operator_id is None:
            raise OperatorNotFound(name)
        if revoke:
            await conn.execute(
                "UPDATE operator_sessions SET revoked_at = now() "
                "WHERE operator_id = $1 AND revoked_at IS NULL",
                operator_id,
            )


async def set_password(conn: asyncpg.Connection, name: str, password_hash: str) -> None:
    """A new password; every session of the operator ends (whoever had the old one is out)."""
    await _change(conn, name, "password_hash = $2, password_changed_at = now()", password_hash, revoke=True)


async def set_role(conn: asyncpg.Connection, name: str, role: Role) -> None:
    """A new role; live sessions see it on their next request."""
    await _change(conn, name, "role = $2", str(role), revoke=False)


async def set_enabled(conn: asyncpg.Connection, name: str, enabled: bool) -> None:
    """Enables or disables an operator; disabling ends their sessions."""
    await _change(conn, name, "enabled = $2", enabled, revoke=not enabled)


async def unlock(conn: asyncpg.Connection, name: str) -> bool:
    """Forgets the failed logins counted against a name; whether there were any."""
    done: str = await conn.execute(
        "DELETE FROM operator_login_throttles WHERE scope = 'operator' AND key = $1",
        name,
    )
    return done != "DELETE 0"


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How many failed logins a name and an address get, and how long the lockouts last."""

    name_limit: int
    address_limit: int
    quiet: timedelta
    base: timedelta
    cap: timedelta


async def claim_login_attempt(
    conn: asyncpg.Connection | asyncpg.Pool, name: str, address: str, policy: ThrottlePolicy
) -> datetime | None:
    """None when the password may be checked (the attempt now counts as failed), else the
    time until which logins for this name or from this address are refused."""
    locked_until: datetime | None = await conn.fetchval(
        "SELECT tolem_operator_login_attempt($1, $2, $3, $4, $5, $6, $7)",
        name,
        address,
        policy.name_limit,
        policy.address_limit,
        policy.quiet,
        policy.base,
        policy.cap,
    )
    return locked_until


async def login_succeeded(conn: asyncpg.Connection, name: str, address: str, policy: ThrottlePolicy) -> None:
    """Takes back the attempt that a correct password counted."""
    await conn.execute(
        "SELECT tolem_operator_login_succeeded($1, $2, $3)", name, address, policy.address_limit
    )


async def create_session(
    conn: asyncpg.Connection,
    operator_id: int,
    token_hash: bytes,
    *,
    lifetime: timedelta,
    remote_addr: str | None,
    user_agent: str | None,
) -> int:
    """A new session; ended sessions long past their expiry are cleared out on the way."""
    await conn.execute("DELETE FROM operator_sessions WHERE expires_at < now() - interval '30 days'")
    session_id: int = await conn.fetchval(
        """INSERT INTO operator_sessions (operator_id, token_hash, expires_at, remote_addr, user_agent)
           VALUES ($1, $2, now() + $3::interval, $4, $5) RETURNING id""",
        operator_id,
        token_hash,
        lifetime,
        remote_addr,
        None if user_agent is None else user_agent[:256],
    )
    return session_id


async def session_operator(
    conn: asyncpg.Connection | asyncpg.Pool, token_hash: bytes, *, idle: timedelta
) -> SessionOperator | None:
    """The operator of a live session (marked as seen now), or None when the session is
    unknown, ended, expired, idle too long, or its operator is disabled."""
    row = await conn.fetchrow(
        """UPDATE operator_sessions s SET last_seen_at = now()
             FROM operators o
            WHERE s.token_hash = $1 AND o.id = s.operator_id AND o.enabled
              AND s.revoked_at IS NULL AND s.expires_at > now() AND s.last_seen_at > now() - $2::interval
        RETURNING s.id AS session_id, o.id AS operator_id, o.name, o.role""",
        token_hash,
        idle,
    )
    if row is None:
        return None
    return SessionOperator(
        session_id=row["session_id"], operator_id=row["operator_id"], name=row["name"], role=Role(row["role"])
    )


async def end_session(conn: asyncpg.Connection, session_id: int) -> None:
    """Ends a session (logout)."""
    await conn.execute(
        "UPDATE operator_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        session_id,
    )


async def record_action(
    conn: asyncpg.Connection,
    operator_id: int,
    action: Action,
    *,
    account_id: int | None = None,
    remote_addr: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Appends one line to the record; inside the caller's transaction when it has one."""
    await conn.execute(
        """INSERT INTO operator_actions (operator_id, action, account_id, remote_addr, details)
           VALUES ($1, $2, $3, $4, $5::jsonb)""",
        operator_id,
        str(action),
        account_id,
        remote_addr,
        json.dumps(details or {}, ensure_ascii=False),
    )


async def account_actions(
    conn: asyncpg.Connection, account_id: int, *, limit: int, views: bool
) -> list[ActionView]:
    """What operators did to an account, newest first: its changes, or (views=True) only who
    looked at it."""
    rows = await conn.fetch(
        """SELECT a.id, a.acted_at, o.name AS operator, a.action, a.account_id,
                  host(a.remote_addr) AS remote_addr, a.details
             FROM operator_actions a JOIN operators o ON o.id = a.operator_id
            WHERE a.account_id = $1 AND (a.action = 'account.view') = $2
            ORDER BY a.id DESC LIMIT $3""",
        account_id,
        views,
        limit,
    )
    return [_action(r) for r in rows]


def _action(row: Any) -> ActionView:
    values = dict(row.items())
    values["action"] = Action(values["action"])
    details = values["details"]
    values["details"] = json.loads(details) if isinstance(details, str) else details
    return ActionView(**values)
