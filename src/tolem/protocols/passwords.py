"""Provider passwords: stored as salted scrypt hashes, checked cheaply per request.

scrypt is deliberately slow, far too slow for every gateway call, so every
verification's outcome is remembered by a keyed digest of (stored hash, presented password):
an aggregator retrying with a wrong password costs scrypt once, not once per call. The cache
holds no password, and a changed password (new stored hash) never matches an old entry.
Callers on an event loop use `remembered` first and run `verify_password` in a thread.
"""

import hashlib
import hmac
import secrets
from typing import Final

_N: Final = 2**14
_R: Final = 8
_P: Final = 1
# People log in by hand and rarely, so their hashes can afford the cost OWASP asks of scrypt
# (N=2^15, r=8, p=3: 32 MiB of memory, about half a second here); a gateway call cannot.
PERSON_COST: Final = (2**15, 8, 3)
# No stored hash may make us allocate more than this (hashlib's default refuses 32 MiB itself).
_MAX_MEMORY: Final = 64 * 1024 * 1024
_PREFIX: Final = "scrypt"
# Enough for every provider's current credentials many times over; bounded all the same.
_CACHE_LIMIT: Final = 1024
_cache_key: Final = secrets.token_bytes(32)
_outcomes: dict[bytes, bool] = {}


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=_MAX_MEMORY)


def hash_password(password: str, *, cost: tuple[int, int, int] = (_N, _R, _P)) -> str:
    """`scrypt$N$r$p$salt$hash` in hex; `cost` is (N, r, p)."""
    n, r, p = cost
    salt = secrets.token_bytes(16)
    digest = _derive(password, salt, n, r, p)
    return f"{_PREFIX}${n}${r}${p}${salt.hex()}${digest.hex()}"


def pair_key(password: str, stored: str) -> bytes:
    """A keyed digest naming one (stored hash, presented password) pair; reveals neither."""
    # Keyed BLAKE2b is a MAC by design (no HMAC construction needed), and cheaper than
    # HMAC-SHA-256 for a digest computed on every authenticated call.
    return hashlib.blake2b(f"{stored}\0{password}".encode(), key=_cache_key, digest_size=32).digest()


def remembered(password: str, stored: str) -> bool | None:
    """The outcome of an earlier verification of this pair, or None if there was none."""
    return _outcomes.get(pair_key(password, stored))


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of `password` against a stored hash; the outcome is cached."""
    marker = pair_key(password, stored)
    known = _outcomes.get(marker)
    if known is not None:
        return known
    good = _check(password, stored)
    if len(_outcomes) >= _CACHE_LIMIT:
        _outcomes.clear()
    _outcomes[marker] = good
    return good


def check_password(password: str, stored: str) -> bool:
    """Constant-time check without the outcome cache: for people logging in, whose guesses
    must neither fill nor flush the cache that spares the gateway its scrypt."""
    return _check(password, stored)


def _check(password: str, stored: str) -> bool:
    try:
        prefix, n, r, p, salt_hex, digest_hex = stored.split("$")
        if prefix != _PREFIX:
            return False
        expected = bytes.fromhex(digest_hex)
        actual = _derive(password, bytes.fromhex(salt_hex), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(expected, actual)
