"""Click SHOP API adapter (Prepare / Complete with md5-signed requests)."""

from tolem.protocols.click.handlers import ClickAdapter

__all__ = ["ClickAdapter"]
