"""Payme Merchant API (JSON-RPC 2.0, two-phase): the adapter, its wire format and code table."""

from tolem.protocols.payme.adapter import PaymeAdapter

__all__ = ["PaymeAdapter"]
