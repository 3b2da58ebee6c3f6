"""Protocol adapters by protocol name. Each adapter package adds itself here."""

from tolem.core.model import Protocol
from tolem.protocols.base import ProtocolAdapter
from tolem.protocols.click import ClickAdapter
from tolem.protocols.osmp import OsmpAdapter
from tolem.protocols.payme import PaymeAdapter

ADAPTERS: dict[Protocol, ProtocolAdapter] = {
    Protocol.CLICK: ClickAdapter(),
    Protocol.OSMP: OsmpAdapter(),
    Protocol.PAYME: PaymeAdapter(),
}
