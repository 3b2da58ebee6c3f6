"""Provider passwords: stored as salted scrypt hashes, checked cheaply per request.

scrypt is deliberately slow (~50 ms), far too slow for every gateway call, so a successful
verification is remembered by a keyed digest of (stored hash, presented password). The cache
holds no password, and a changed password (new stored hash) never matches an old entry.
"""

import hashlib
import hmac
import secrets
from typing import Final

_N: Final = 2**14
_R: Final = 8
_P: Final = 1
_PREFIX: Final = "scrypt"
# Enough for every provider's current credentials many times over; bounded all the same.
_CACHE_LIMIT: Final = 1024
_cache_key: Final = secrets.token_bytes(32)
_verified: set[bytes] = set()


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash` in hex."""
    salt = secrets.token_bytes(16)
    digest = _derive(password, salt, _N, _R, _P)
    return f"{_PREFIX}${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of `password` against a stored hash; cached after a success."""
    marker = hmac.new(_cache_key, f"{stored}\0{password}".encode(), "sha256").digest()
    if marker in _verified:
        return True
    try:
        prefix, n, r, p, salt_hex, digest_hex = stored.split("$")
        if prefix != _PREFIX:
            return False
        expected = bytes.fromhex(digest_hex)
        actual = _derive(password, bytes.fromhex(salt_hex), int(n), int(r), int(p))
    except ValueError:
        return False
    if not hmac.compare_digest(expected, actual):
        return False
    if len(_verified) >= _CACHE_LIMIT:
        _verified.clear()
    _verified.add(marker)
    return True
