"""Console logins: cookies, server-side sessions, logout, expiry, lockout, and CSRF refusals."""

import asyncio
import hashlib
from datetime import timedelta
from ipaddress import ip_network
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from tests.console.conftest import (
    ADMIN,
    PASSWORD,
    SUPPORT,
    ClientMaker,
    Console,
    add_operator,
)
from tolem.app import create_app
from tolem.console.security import LOGIN_THROTTLE, PRE_LOGIN_COOKIE, SESSION_COOKIE
from tolem.db import operators as operator_db
from tolem.db.operators import Role
from tolem.settings import Settings


def set_cookie_headers(page: Any, name: str) -> list[str]:
    """The Set-Cookie headers of a response for one cookie."""
    return [h for h in page.headers.getall("Set-Cookie", []) if h.startswith(f"{name}=")]


async def sessions(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Every stored session."""
    return await pool.fetch("SELECT * FROM operator_sessions ORDER BY id")


async def actions(pool: asyncpg.Pool, action: str) -> int:
    """How many times the record says `action`."""
    return int(await pool.fetchval("SELECT count(*) FROM operator_actions WHERE action = $1", action))


class TestLogin:
    async def test_login_form_sets_a_protected_pre_login_cookie(self, console: Console) -> None:
        """The login form comes with an HttpOnly, SameSite=Lax cookie under /ops/ and a CSRF token."""
        page = await console.get("/ops/login")
        assert page.status == 200
        [header] = set_cookie_headers(page, PRE_LOGIN_COOKIE)
        assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/ops/" in header
        assert "Secure" not in header  # plain HTTP here: a Secure cookie would never come back
        assert len(page.csrf()) == 64

    async def test_good_login_opens_a_session_stored_only_as_a_hash(
        self, console: Console, pool: asyncpg.Pool
    ) -> None:
        """The right password gives a session cookie; the database keeps its SHA-256, not the token."""
        answer = await console.login(ADMIN)
        assert answer.status == 303
        assert answer.headers["Location"] == "/ops/"
        [header] = set_cookie_headers(answer, SESSION_COOKIE)
        assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/ops/" in header
        token = console.cookie(SESSION_COOKIE)
        assert token is not None and len(token) >= 43
        [stored] = await sessions(pool)
        assert bytes(stored["token_hash"]) == hashlib.sha256(token.encode()).digest()
        assert token.encode() not in bytes(stored["token_hash"])
        assert stored["expires_at"] - stored["created_at"] == timedelta(hours=12)
        assert await actions(pool, "login") == 1
        home = await console.get("/ops/")
        assert home.status == 200 and f"{ADMIN} (" in home.text

    async def test_login_name_is_case_blind(self, console: Console) -> None:
        """Operators may type their name in any case."""
        assert (await console.login("  AnNa ")).status == 303

    @pytest.mark.parametrize(("name", "password"), [(ADMIN, "wrong password!"), ("nobody", PASSWORD)])
    async def test_wrong_name_or_password_get_the_same_refusal(
        self, console: Console, pool: asyncpg.Pool, name: str, password: str
    ) -> None:
        """A wrong password and an unknown name are refused alike (401), and no session is made."""
        answer = await console.login(name, password)
        assert answer.status == 401
        assert "Неверное имя или пароль." in answer.text
        assert console.cookie(SESSION_COOKIE) is None
        assert await sessions(pool) == []

    async def test_disabled_operator_cannot_log_in(self, console: Console, pool: asyncpg.Pool) -> None:
        """A disabled operator's right password is refused like a wrong one."""
        async with pool.acquire() as conn:
            await operator_db.set_enabled(conn, ADMIN, False)
        assert (await console.login(ADMIN)).status == 401

    async def test_page_without_session_goes_to_login_and_back(self, console: Console, customer: Any) -> None:
        """A page opened before logging in sends the browser to the form, and back to it afterwards."""
        account_id, _ = customer
        answer = await console.get(f"/ops/accounts/{account_id}", follow=False)
        assert answer.status == 303
        assert answer.headers["Location"] == f"/ops/login?next=%2Fops%2Faccounts%2F{account_id}"
        logged_in = await console.login(ADMIN, next_=f"/ops/accounts/{account_id}")
        assert logged_in.headers["Location"] == f"/ops/accounts/{account_id}"

    @pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/ops/", "/admin/providers"])
    async def test_login_never_redirects_outside_the_console(self, console: Console, target: str) -> None:
        """A `next` pointing anywhere but /ops/ is replaced by the console's home."""
        answer = await console.login(ADMIN, next_=target)
        assert answer.headers["Location"] == "/ops/"

    async def test_post_without_session_is_refused(
        self, console: Console, customer: Any, pool: asyncpg.Pool
    ) -> None:
        """A change sent without a session is a 401 page and changes nothing."""
        account_id, _ = customer
        answer = await console.post(f"/ops/accounts/{account_id}/block", {"csrf": "0" * 64})
        assert answer.status == 401
        assert await pool.fetchval("SELECT status FROM accounts WHERE id = $1", account_id) == "active"


class TestSessions:
    async def test_logout_ends_the_session_in_the_database(
        self, admin: Console, client: TestClient[Any, Any], pool: asyncpg.Pool
    ) -> None:
        """After logout the old cookie opens nothing, even when a copy of it is sent again."""
        token = admin.cookie(SESSION_COOKIE)
        assert token is not None
        answer = await admin.submit("/ops/", "/ops/logout")
        assert answer.status == 303 and answer.headers["Location"] == "/ops/login"
        [stored] = await sessions(pool)
        assert stored["revoked_at"] is not None
        assert await actions(pool, "logout") == 1
        replayed = await admin.get("/ops/", follow=False, cookies={SESSION_COOKIE: token})
        assert replayed.status == 303 and replayed.headers["Location"].startswith("/ops/login")

    async def test_idle_session_ends(self, admin: Console, pool: asyncpg.Pool) -> None:
        """A session unused for more than an hour sends the operator back to the login form."""
        assert (await admin.get("/ops/", follow=False)).status == 200
        await pool.execute("UPDATE operator_sessions SET last_seen_at = now() - interval '61 minutes'")
        assert (await admin.get("/ops/", follow=False)).status == 303

    async def test_session_ends_at_its_expiry_however_active(
        self, admin: Console, pool: asyncpg.Pool
    ) -> None:
        """A session past its absolute expiry ends even if it was used a moment ago."""
        await pool.execute(
            "UPDATE operator_sessions SET created_at = now() - interval '13 hours', "
            "expires_at = now() - interval '1 hour'"
        )
        assert (await admin.get("/ops/", follow=False)).status == 303

    async def test_use_keeps_a_session_alive(self, admin: Console, pool: asyncpg.Pool) -> None:
        """Each request moves last_seen_at, so an operator at work is not logged out after an hour."""
        await pool.execute("UPDATE operator_sessions SET last_seen_at = now() - interval '59 minutes'")
        assert (await admin.get("/ops/", follow=False)).status == 200
        assert await pool.fetchval("SELECT now() - last_seen_at < interval '1 minute' FROM operator_sessions")

    @pytest.mark.parametrize("change", ["disable", "password"])
    async def test_disabling_or_a_new_password_ends_sessions(
        self, admin: Console, pool: asyncpg.Pool, change: str
    ) -> None:
        """Disabling an operator or setting their password ends their live sessions at once."""
        async with pool.acquire() as conn:
            if change == "disable":
                await operator_db.set_enabled(conn, ADMIN, False)
            else:
                await operator_db.set_password(conn, ADMIN, "scrypt$1024$8$1$00$00")
        assert (await admin.get("/ops/", follow=False)).status == 303

    async def test_role_change_applies_to_a_live_session(self, admin: Console, pool: asyncpg.Pool) -> None:
        """An admin made support loses the admin's forms on the next page, without logging in again."""
        assert "/ops/logout" in (await admin.get("/ops/")).text
        async with pool.acquire() as conn:
            await operator_db.set_role(conn, ADMIN, Role.SUPPORT)
        assert f"{ADMIN} (поддержка)" in (await admin.get("/ops/")).text

    async def test_forged_or_overlong_cookie_is_no_session(self, console: Console) -> None:
        """A made-up token, or an absurdly long cookie, is treated as no session at all."""
        for token in ("forged-token", "x" * 5000):
            answer = await console.get("/ops/", follow=False, cookies={SESSION_COOKIE: token})
            assert answer.status == 303


class TestSecureCookie:
    @pytest.fixture
    def settings(self, database_url: str) -> Settings:
        """Loopback is the trusted proxy, as nginx's address is in compose."""
        return Settings(
            database_url=SecretStr(database_url),
            provider_cache_seconds=0,
            request_deadline=2.0,
            trusted_proxies=(ip_network("127.0.0.0/8"),),
        )

    async def test_secure_behind_a_trusted_tls_proxy(self, console: Console) -> None:
        """X-Forwarded-Proto: https from a trusted proxy makes every console cookie Secure."""
        https = {"X-Forwarded-Proto": "https"}
        form = await console.get("/ops/login", headers=https)
        [header] = set_cookie_headers(form, PRE_LOGIN_COOKIE)
        assert "Secure" in header
        # The test talks plain HTTP, so its cookie jar rightly keeps a Secure cookie to itself:
        # send it back the way the browser behind the proxy would.
        pre_login = header.split(";")[0].split("=", 1)[1]
        answer = await console.post(
            "/ops/login",
            {"name": ADMIN, "password": PASSWORD, "csrf": form.csrf(), "next": "/ops/"},
            headers=https,
            cookies={PRE_LOGIN_COOKIE: pre_login},
        )
        assert answer.status == 303
        assert "Secure" in set_cookie_headers(answer, SESSION_COOKIE)[0]

    async def test_plain_http_through_the_proxy_is_not_secure(self, console: Console) -> None:
        """X-Forwarded-Proto: http from the same proxy leaves the cookie usable over plain HTTP."""
        form = await console.get("/ops/login", headers={"X-Forwarded-Proto": "http"})
        assert "Secure" not in set_cookie_headers(form, PRE_LOGIN_COOKIE)[0]


async def test_forwarded_proto_from_an_untrusted_peer_is_ignored(
    aiohttp_client: ClientMaker, settings: Settings
) -> None:
    """Without trusted proxies, a caller claiming HTTPS gets no Secure cookie (it could not use one)."""
    client = await aiohttp_client(create_app(settings))
    async with client.get("/ops/login", headers={"X-Forwarded-Proto": "https"}) as response:
        [header] = [h for h in response.headers.getall("Set-Cookie") if h.startswith(PRE_LOGIN_COOKIE)]
    assert "Secure" not in header


class TestLockout:
    async def test_five_failures_lock_the_name(self, console: Console, pool: asyncpg.Pool) -> None:
        """After five wrong passwords even the right one is refused (429) until the lockout ends."""
        for _ in range(LOGIN_THROTTLE.name_limit):
            assert (await console.login(ADMIN, "wrong password!")).status == 401
        locked = await console.login(ADMIN)
        assert locked.status == 429
        assert "Слишком много неудачных попыток входа" in locked.text
        assert console.cookie(SESSION_COOKIE) is None
        until = await pool.fetchval(
            "SELECT locked_until - now() FROM operator_login_throttles WHERE scope = 'operator' AND key = $1",
            ADMIN,
        )
        assert timedelta(seconds=25) < until <= timedelta(seconds=30)

    async def test_lockout_ends_and_success_forgets_the_count(
        self, console: Console, pool: asyncpg.Pool
    ) -> None:
        """Once the lockout has passed the right password works, and the name's count starts again."""
        for _ in range(LOGIN_THROTTLE.name_limit):
            await console.login(ADMIN, "wrong password!")
        await pool.execute("UPDATE operator_login_throttles SET locked_until = now() - interval '1 second'")
        assert (await console.login(ADMIN)).status == 303
        assert (
            await pool.fetchval("SELECT count(*) FROM operator_login_throttles WHERE scope = 'operator'") == 0
        )

    async def test_each_further_failure_doubles_the_lockout(
        self, console: Console, pool: asyncpg.Pool
    ) -> None:
        """A wrong password right after a lockout locks the name again, for twice as long."""
        for _ in range(LOGIN_THROTTLE.name_limit):
            await console.login(ADMIN, "wrong password!")
        for expected in (60, 120):
            await pool.execute(
                "UPDATE operator_login_throttles SET locked_until = now() - interval '1 second'"
            )
            assert (await console.login(ADMIN, "wrong password!")).status == 401
            until = await pool.fetchval(
                "SELECT locked_until - now() FROM operator_login_throttles WHERE scope = 'operator'"
            )
            assert timedelta(seconds=expected - 5) < until <= timedelta(seconds=expected)

    async def test_locked_attempts_are_not_checked_or_counted(
        self, console: Console, pool: asyncpg.Pool
    ) -> None:
        """While locked, attempts are refused without a password check and do not lengthen the lockout."""
        for _ in range(LOGIN_THROTTLE.name_limit):
            await console.login(ADMIN, "wrong password!")
        before = await pool.fetchrow(
            "SELECT failures, locked_until FROM operator_login_throttles WHERE scope = 'operator'"
        )
        for _ in range(3):
            assert (await console.login(ADMIN, "wrong password!")).status == 429
        after = await pool.fetchrow(
            "SELECT failures, locked_until FROM operator_login_throttles WHERE scope = 'operator'"
        )
        assert after == before

    async def test_unknown_names_are_throttled_too(self, console: Console) -> None:
        """Guessing a name that does not exist locks just the same, so lockouts reveal no names."""
        for _ in range(LOGIN_THROTTLE.name_limit):
            assert (await console.login("ghost", "whatever password")).status == 401
        assert (await console.login("ghost", "whatever password")).status == 429

    async def test_one_address_guessing_many_names_is_locked(
        self, console: Console, pool: asyncpg.Pool
    ) -> None:
        """Twenty failures from one address, each for another name, lock that address for every name."""
        for n in range(LOGIN_THROTTLE.address_limit):
            assert (await console.login(f"guess{n}", "whatever password")).status == 401
        assert (await console.login(ADMIN)).status == 429
        row = await pool.fetchrow(
            "SELECT key, failures FROM operator_login_throttles WHERE scope = 'address'"
        )
        assert row["key"] == "127.0.0.1" and row["failures"] == LOGIN_THROTTLE.address_limit

    async def test_a_burst_of_parallel_guesses_gets_no_extra_tries(
        self, client: TestClient[Any, Any], console: Console, pool: asyncpg.Pool
    ) -> None:
        """Twenty wrong passwords sent at once: five are checked (401), the other fifteen are locked out."""
        form = await console.get("/ops/login")
        data = {"name": SUPPORT, "password": "wrong password!", "csrf": form.csrf(), "next": "/ops/"}

        async def attempt() -> int:
            async with client.post("/ops/login", data=data, allow_redirects=False) as response:
                return response.status

        statuses = await asyncio.gather(*(attempt() for _ in range(20)))
        assert sorted(statuses) == [401] * LOGIN_THROTTLE.name_limit + [429] * 15

    async def test_success_takes_back_only_its_own_attempt_for_the_address(
        self, console: Console, pool: asyncpg.Pool
    ) -> None:
        """A correct login leaves the address's earlier failures counted (someone may be guessing)."""
        for n in range(3):
            await console.login(f"guess{n}", "whatever password")
        assert (await console.login(ADMIN)).status == 303
        assert (
            await pool.fetchval("SELECT failures FROM operator_login_throttles WHERE scope = 'address'") == 3
        )


class TestCsrf:
    async def test_login_without_the_forms_token_is_refused(
        self, console: Console, pool: asyncpg.Pool
    ) -> None:
        """A login post without the token of the browser's own form is 403 and counts as no attempt."""
        await console.get("/ops/login")
        for token in ("", "0" * 64):
            answer = await console.post("/ops/login", {"name": ADMIN, "password": PASSWORD, "csrf": token})
            assert answer.status == 403
        assert console.cookie(SESSION_COOKIE) is None
        assert await pool.fetchval("SELECT count(*) FROM operator_login_throttles") == 0

    async def test_login_token_without_its_cookie_is_refused(
        self, console: Console, client: TestClient[Any, Any]
    ) -> None:
        """A page elsewhere cannot log a browser in: a token copied without its cookie is refused."""
        token = (await console.get("/ops/login")).csrf()
        client.session.cookie_jar.clear()
        answer = await console.post("/ops/login", {"name": ADMIN, "password": PASSWORD, "csrf": token})
        assert answer.status == 403

    @pytest.mark.parametrize("token", [None, "", "0" * 64])
    async def test_change_without_a_valid_token_is_refused(
        self, admin: Console, customer: Any, pool: asyncpg.Pool, token: str | None
    ) -> None:
        """Blocking without the session's CSRF token is 403; the account and the record stay as they were."""
        account_id, _ = customer
        data = {} if token is None else {"csrf": token}
        answer = await admin.post(f"/ops/accounts/{account_id}/block", data)
        assert answer.status == 403
        assert "Форма устарела" in answer.text
        assert await pool.fetchval("SELECT status FROM accounts WHERE id = $1", account_id) == "active"
        assert await actions(pool, "account.block") == 0

    async def test_another_sessions_token_is_refused(
        self,
        aiohttp_client: ClientMaker,
        settings: Settings,
        client: TestClient[Any, Any],
        customer: Any,
        pool: asyncpg.Pool,
    ) -> None:
        """A token from one operator's page does not work in another operator's session."""
        account_id, _ = customer
        await add_operator(pool, "chyngyz", Role.ADMIN)
        other = Console(await aiohttp_client(create_app(settings)))
        await other.login("chyngyz")
        foreign = (await other.get(f"/ops/accounts/{account_id}")).csrf()
        mine = Console(client)
        await mine.login(ADMIN)
        answer = await mine.post(f"/ops/accounts/{account_id}/block", {"csrf": foreign})
        assert answer.status == 403
        assert await pool.fetchval("SELECT status FROM accounts WHERE id = $1", account_id) == "active"

    async def test_logout_without_token_keeps_the_session(self, admin: Console, pool: asyncpg.Pool) -> None:
        """A forged logout is refused too: the session stays alive."""
        assert (await admin.post("/ops/logout", {})).status == 403
        assert (await admin.get("/ops/", follow=False)).status == 200
        assert await actions(pool, "logout") == 0
