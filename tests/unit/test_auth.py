"""Caller identification: client address behind proxies, allow-lists, Basic credentials."""

import asyncio
import base64
from ipaddress import ip_address, ip_network

import pytest
from aiohttp.test_utils import make_mocked_request

from tests.conftest import provider_value
from tolem.core.model import Provider, WireProtocol
from tolem.protocols import auth
from tolem.protocols.auth import basic_credentials, client_ip, ip_allowed, password_ok
from tolem.protocols.passwords import hash_password, remembered, verify_password


def provider(**kw: object) -> Provider:
    """An OSMP provider value with defaults."""
    return provider_value(WireProtocol.OSMP, "p", **kw)


def request(peer: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """A request from `peer`."""
    req = make_mocked_request("GET", "/gw/p", headers=headers or {})
    return req.clone(remote=peer)


PROXY = (ip_network("10.0.0.0/8"),)


def test_peer_is_the_client_without_trusted_proxies() -> None:
    """X-Forwarded-For from an untrusted peer is ignored: it could say anything."""
    assert client_ip(request("203.0.113.9", {"X-Forwarded-For": "1.2.3.4"}), ()) == ip_address("203.0.113.9")


def test_forwarded_for_is_believed_from_trusted_proxy() -> None:
    """Behind a trusted proxy, the nearest untrusted hop is the client."""
    headers = {"X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.0.0.2"}
    assert client_ip(request("10.0.0.1", headers), PROXY) == ip_address("198.51.100.7")


def test_garbage_forwarded_for_yields_nobody() -> None:
    """An unparsable hop makes the caller unknown, which no allow-list admits."""
    assert client_ip(request("10.0.0.1", {"X-Forwarded-For": "nonsense"}), PROXY) is None
    assert not ip_allowed(provider(allow_ips=(ip_network("0.0.0.0/0"),)), None)


def test_allow_list() -> None:
    """Addresses inside a listed network pass, others do not; an empty list admits all."""
    listed = provider(allow_ips=(ip_network("192.0.2.0/24"),))
    assert ip_allowed(listed, ip_address("192.0.2.10"))
    assert not ip_allowed(listed, ip_address("192.0.3.10"))
    assert ip_allowed(provider(), ip_address("192.0.3.10"))


def test_basic_credentials_parsing() -> None:
    """Well-formed Basic headers parse; broken ones are None, never an exception."""
    good = "Basic " + base64.b64encode(b"Paycom:key:with:colons").decode()
    assert basic_credentials(request("1.1.1.1", {"Authorization": good})) == ("Paycom", "key:with:colons")
    for bad in (
        "Basic !!!",
        "Bearer abc",
        "Basic " + base64.b64encode(b"nocolon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "",
    ):
        assert basic_credentials(request("1.1.1.1", {"Authorization": bad})) is None


async def test_password_check() -> None:
    """Right login and password pass; a wrong either fails; no hash means no credentials needed."""
    stored = hash_password("s3cret")
    p = provider(password_hash=stored, login="kiosk")
    assert await password_ok(p, ("kiosk", "s3cret"))
    assert not await password_ok(p, ("kiosk", "wrong"))
    assert not await password_ok(p, ("other", "s3cret"))
    assert not await password_ok(p, None)
    assert await password_ok(provider(password_hash=stored), ("Paycom", "s3cret"), default_login="Paycom")
    assert not await password_ok(provider(password_hash=stored), ("x", "s3cret"), default_login="Paycom")
    assert await password_ok(provider(), None)


def test_hash_is_salted_and_verifies() -> None:
    """Two hashes of one password differ; each verifies; a corrupt hash never does."""
    a, b = hash_password("pw"), hash_password("pw")
    assert a != b
    assert verify_password("pw", a) and verify_password("pw", b)
    assert not verify_password("pw", "scrypt$garbage")
    assert not verify_password("pw", "md5$1$2$3$00$00")
    assert "pw" not in a


async def test_a_wrong_password_is_remembered_not_rehashed() -> None:
    """A failed check is cached like a good one, and a new stored hash forgets both outcomes."""
    stored = hash_password("right")
    assert remembered("wrong", stored) is None
    assert not await password_ok(provider(password_hash=stored), ("x", "wrong"))
    assert remembered("wrong", stored) is False
    assert await password_ok(provider(password_hash=stored), ("x", "right"))
    assert remembered("right", stored) is True
    assert remembered("right", hash_password("right")) is None


async def test_a_burst_of_the_same_credentials_runs_scrypt_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls arriving together with one unverified password share one scrypt, and all get it."""
    stored = hash_password("burst")
    runs: list[str] = []

    def counted(password: str, stored_hash: str) -> bool:
        runs.append(password)
        return verify_password(password, stored_hash)

    monkeypatch.setattr(auth, "verify_password", counted)
    answers = await asyncio.gather(
        *(password_ok(provider(password_hash=stored), ("x", "burst")) for _ in range(20)),
        *(password_ok(provider(password_hash=stored), ("x", "wrong")) for _ in range(20)),
    )
    assert answers == [True] * 20 + [False] * 20
    assert sorted(runs) == ["burst", "wrong"]
    assert not auth._verifying
