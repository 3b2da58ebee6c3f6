"""tolem: the gateway through which wallets and kiosks top up hosting accounts by payment code."""

__version__ = "0.1.0"
