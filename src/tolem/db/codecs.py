"""Type codecs installed on every pooled connection."""

import functools
import ipaddress
from typing import Final

import asyncpg

# PostgreSQL's own address-family numbers in the binary inet format (not the socket ones).
_PGSQL_AF_INET: Final = 2
_PGSQL_AF_INET6: Final = 3
IPValue = ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Interface | ipaddress.IPv6Interface


@functools.lru_cache(maxsize=1024)
def _inet_wire(text: str) -> bytes:
    try:
        address: IPValue = ipaddress.ip_address(text)
        bits: int = address.max_prefixlen
    except ValueError:
        address = ipaddress.ip_interface(text)
        bits = address.network.prefixlen
    family = _PGSQL_AF_INET if address.version == 4 else _PGSQL_AF_INET6
    # family, prefix length, "is cidr" (the server ignores it for inet), length, address
    return bytes((family, bits, 0, len(address.packed))) + address.packed


def encode_inet(value: str | IPValue) -> bytes:
    """An address (text or ipaddress object) in inet's binary format, cached by its text.

    asyncpg's own encoder parses the text with the ipaddress module every time, the larger part
    of a request journal row's cost in the COPY, for the handful of addresses that aggregators
    call from.
    """
    return _inet_wire(value if isinstance(value, str) else str(value))


def decode_inet(data: bytes) -> IPValue:
    """What asyncpg's own decoder gives: an address, or an interface when a prefix is set."""
    family, bits, size = data[0], data[1], data[3]
    packed = data[4 : 4 + size]
    full = 32 if family == _PGSQL_AF_INET else 128
    if bits == full:
        return ipaddress.ip_address(packed)
    return ipaddress.ip_interface((packed, bits))


async def install(conn: asyncpg.Connection) -> None:
    """Installs the codecs on a new connection (the pool's `init`)."""
    await conn.set_type_codec(
        "inet", schema="pg_catalog", encoder=encode_inet, decoder=decode_inet, format="binary"
    )
