"""QIWI "OSMP" provider protocol (check / pay, plus status and cancel) for kiosks and wallets."""

from tolem.protocols.osmp.handlers import OsmpAdapter

__all__ = ["OsmpAdapter"]
