"""The console's session and form protection: tokens, cookies, CSRF, lockout policy, TLS.

A session is a random token in an HttpOnly cookie; the database keeps only its SHA-256
(see migration 0013 for why sessions live there rather than in a signed cookie). The CSRF
token of every form is a MAC of the cookie's token: a page from elsewhere cannot read the
cookie, so it cannot make the token, and the server needs to store nothing more. Before login
the same is done with a short-lived pre-login cookie, so the login form is protected too.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta
from ipaddress import ip_address
from typing import Final

from aiohttp import web

from tolem.db.operators import ThrottlePolicy
from tolem.settings import Network

SESSION_COOKIE: Final = "tolem_ops"
PRE_LOGIN_COOKIE: Final = "tolem_ops_login"
LANGUAGE_COOKIE: Final = "tolem_ops_lang"
COOKIE_PATH: Final = "/ops/"
CSRF_FIELD: Final = "csrf"

# An operator's working day, at most; a session idle for an hour (lunch, a locked screen left
# open) must be logged into again.
SESSION_LIFETIME: Final = timedelta(hours=12)
SESSION_IDLE: Final = timedelta(hours=1)
PRE_LOGIN_SECONDS: Final = 3600

# Five wrong passwords for a name, or twenty from one address (an office behind one NAT
# address, or someone trying many names), lock it for 30 s, then 1, 2, 4, 8 and at most 15
# minutes per further failure; an hour without attempts forgets the count.
LOGIN_THROTTLE: Final = ThrottlePolicy(
    name_limit=5,
    address_limit=20,
    quiet=timedelta(hours=1),
    base=timedelta(seconds=30),
    cap=timedelta(minutes=15),
)

_CSRF_CONTEXT: Final = b"tolem-ops-csrf"
_TOKEN_BYTES: Final = 32


def new_token() -> str:
    """A fresh 256-bit token, URL-safe text."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


def token_hash(token: str) -> bytes:
    """What the database keeps of a session token."""
    return hashlib.sha256(token.encode()).digest()


def csrf_token(cookie_token: str) -> str:
    """The form token that goes with a cookie's token."""
    return hmac.new(cookie_token.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def csrf_ok(cookie_token: str | None, given: object) -> bool:
    """Whether a form's token belongs to the cookie the request came with."""
    if not cookie_token or not isinstance(given, str):
        return False
    return hmac.compare_digest(csrf_token(cookie_token).encode(), given.encode())


def behind_tls(request: web.Request, trusted_proxies: tuple[Network, ...]) -> bool:
    """Whether the browser reached us over HTTPS: our own TLS, or a trusted proxy saying so.

    X-Forwarded-Proto is believed only from a peer in TOLEM_TRUSTED_PROXIES, as X-Forwarded-For
    is: from anyone else it is whatever the caller chose to send.
    """
    if request.secure:
        return True
    forwarded = request.headers.get("X-Forwarded-Proto")
    if forwarded is None or not trusted_proxies:
        return False
    try:
        peer = ip_address(request.remote or "")
    except ValueError:
        return False
    if not any(peer in net for net in trusted_proxies):
        return False
    # The hop nearest the browser comes first when proxies append.
    return forwarded.split(",")[0].strip().lower() == "https"


def set_cookie(
    response: web.StreamResponse, name: str, value: str, *, secure: bool, max_age: int | None = None
) -> None:
    """A console cookie: HttpOnly, SameSite=Lax, only under /ops/, Secure behind TLS.

    Lax rather than Strict: a link to an account pasted into a ticket must open it without a
    second login; every change is a POST, which Lax never sends from another site, and each
    form carries its CSRF token as well.
    """
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Lax",
        secure=secure,
        max_age=max_age,
    )


def clear_cookie(response: web.StreamResponse, name: str, *, secure: bool) -> None:
    """Removes a console cookie from the browser."""
    response.del_cookie(name, path=COOKIE_PATH, secure=secure, httponly=True, samesite="Lax")
