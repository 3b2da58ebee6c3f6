"""Protocol adapters by protocol name. Each adapter package adds itself here."""

from tolem.core.model import WireProtocol
from tolem.protocols.base import ProtocolAdapter
from tolem.protocols.click import ClickAdapter
from tolem.protocols.osmp import OsmpAdapter
from tolem.protocols.payme import PaymeAdapter

ADAPTERS: dict[WireProtocol, ProtocolAdapter] = {
    WireProtocol.CLICK: ClickAdapter(),
    WireProtocol.OSMP: OsmpAdapter(),
    WireProtocol.PAYME: PaymeAdapter(),
}
