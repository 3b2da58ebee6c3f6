"""Caller checks shared by the protocols: IP allow-list and HTTP Basic credentials."""

import asyncio
import base64
import binascii
import functools
import hmac
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Final

from aiohttp import web

from tolem.core.model import Provider
from tolem.protocols.passwords import pair_key, remembered, verify_password
from tolem.settings import Network

IPAddress = IPv4Address | IPv6Address


# The adapter's allow-list and the journal both ask for the address: worked out once.
_CLIENT_IP: Final = web.RequestKey("client_ip", tuple)


@functools.lru_cache(maxsize=4096)
def _peer_address(remote: str) -> IPAddress:
    # ipaddress parses in Python (a few microseconds); aggregators call from a handful of hosts.
    return ip_address(remote)


def client_ip(request: web.Request, trusted_proxies: tuple[Network, ...]) -> IPAddress | None:
    """The caller's address: the peer, or X-Forwarded-For's nearest untrusted hop when the
    peer is a trusted proxy. Anything unparsable yields None, which no allow-list admits."""
    known = request.get(_CLIENT_IP)
    if known is not None and known[0] is trusted_proxies:
        return known[1]  # type: ignore[no-any-return]
    address = _client_ip(request, trusted_proxies)
    request[_CLIENT_IP] = (trusted_proxies, address)
    return address


def _client_ip(request: web.Request, trusted_proxies: tuple[Network, ...]) -> IPAddress | None:
    try:
        peer = _peer_address(request.remote or "")
    except ValueError:
        return None
    if not any(peer in net for net in trusted_proxies):
        return peer
    forwarded = request.headers.getall("X-Forwarded-For", [])
    hops = [hop.strip() for header in forwarded for hop in header.split(",")]
    # Walk from the nearest hop outwards; the first address not a trusted proxy is the client.
    for hop in reversed(hops):
        try:
            address = ip_address(hop)
        except ValueError:
            return None
        if not any(address in net for net in trusted_proxies):
            return address
    return peer


def ip_allowed(provider: Provider, address: IPAddress | None) -> bool:
    """An empty allow-list admits any address (credentials are then mandatory)."""
    if not provider.allow_ips:
        return True
    return address is not None and any(address in net for net in provider.allow_ips)


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """(login, password) from an Authorization: Basic header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        # ValueError also covers a token that is not ASCII at all (UnicodeEncodeError).
        return None
    login, sep, password = decoded.partition(":")
    return (login, password) if sep else None


async def password_ok(
    provider: Provider, credentials: tuple[str, str] | None, *, default_login: str | None = None
) -> bool:
    """Whether Basic credentials match the provider's login (if any) and password hash.

    A provider without a password hash needs no credentials.
    """
    if provider.password_hash is None:
        return True
    if credentials is None:
        return False
    login, password = credentials
    expected_login = provider.login or default_login
    login_ok = expected_login is None or hmac.compare_digest(
        login.encode(),
        expected_login.encode(),
    )
    # Verify the password even when the login is wrong, so timing tells nothing about which.
    password_good = remembered(password, provider.password_hash)
    if password_good is None:
        password_good = await _verify_once(password, provider.password_hash)
    return login_ok and password_good


# Why a caller was refused, as the journal and the log line say it. Operators read these to
# tell a wrong allow-list from a missing TOLEM_TRUSTED_PROXIES from a wrong key.
ADDRESS_NOT_ALLOWED: Final = "address not allowed"
FORWARDED_NOT_TRUSTED: Final = "address not allowed; X-Forwarded-For present but not trusted"
BAD_CREDENTIALS: Final = "bad credentials"


def address_refusal(
    request: web.Request, provider: Provider, trusted_proxies: tuple[Network, ...]
) -> str | None:
    """None when the caller passes the provider's allow-list, else why it does not.

    A request that carries X-Forwarded-For from a peer we do not trust is named apart: behind
    a proxy missing from TOLEM_TRUSTED_PROXIES every caller looks like the proxy.
    """
    if ip_allowed(provider, client_ip(request, trusted_proxies)):
        return None
    if "X-Forwarded-For" in request.headers and not _peer_trusted(request, trusted_proxies):
        return FORWARDED_NOT_TRUSTED
    return ADDRESS_NOT_ALLOWED


def _peer_trusted(request: web.Request, trusted_proxies: tuple[Network, ...]) -> bool:
    try:
        peer = _peer_address(request.remote or "")
    except ValueError:
        return False
    return any(peer in net for net in trusted_proxies)


async def refusal(
    request: web.Request,
    provider: Provider,
    trusted_proxies: tuple[Network, ...],
    *,
    default_login: str | None = None,
) -> str | None:
    """None when the caller passes the provider's allow-list and, if it has a password, Basic
    credentials (the whole gate of protocols that authenticate with HTTP Basic); else why not."""
    reason = address_refusal(request, provider, trusted_proxies)
    if reason is not None:
        return reason
    if not await password_ok(provider, basic_credentials(request), default_login=default_login):
        return BAD_CREDENTIALS
    return None


# Verifications in progress, by event loop and keyed digest of the pair (no password kept).
_verifying: dict[tuple[asyncio.AbstractEventLoop, bytes], asyncio.Future[bool]] = {}


async def _verify_once(password: str, stored: str) -> bool:
    """scrypt in a thread (it releases the GIL, so no other request stalls), once for
    all the calls that bring the same credentials while it runs.

    Without this, the first burst after a start or a password change (64 connections arriving
    together) ran scrypt once per call: seconds of CPU on a small machine, and 16 MB of
    scrypt memory per executor thread that the worker kept (RSS 60 -> 156 MB in the benchmark).
    """
    loop = asyncio.get_running_loop()
    key = (loop, pair_key(password, stored))
    running = _verifying.get(key)
    if running is None:
        running = asyncio.ensure_future(asyncio.to_thread(verify_password, password, stored))
        _verifying[key] = running
        running.add_done_callback(lambda _done: _verifying.pop(key, None))
    # Shielded: a caller that gives up (its deadline) must not cancel the others' answer.
    return await asyncio.shield(running)
