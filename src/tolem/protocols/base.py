"""What every protocol adapter provides, and the context the gateway hands it."""

import abc
from dataclasses import dataclass
from typing import ClassVar

from aiohttp import web

from tolem.core.model import Provider, WireProtocol
from tolem.core.service import PaymentService
from tolem.log import LogLine
from tolem.settings import Settings


@dataclass(frozen=True, slots=True)
class GatewayContext:
    """Shared, per-process objects an adapter needs for one call."""

    service: PaymentService
    settings: Settings


class ProtocolAdapter(abc.ABC):
    """Reads one protocol's requests, calls the core, renders the protocol's answers.

    An adapter authenticates the caller before reading anything else, maps every DomainError
    through its own code table, and fills `log_line` (command, masked code, result) for the
    canonical log line. It never answers success or a final code when unsure.
    """

    protocol: ClassVar[WireProtocol]

    @abc.abstractmethod
    async def handle(
        self,
        request: web.Request,
        provider: Provider,
        context: GatewayContext,
        log_line: LogLine,
    ) -> web.StreamResponse:
        """Answers one gateway call."""

    @abc.abstractmethod
    def temporary_error(self, request: web.Request, provider: Provider) -> web.StreamResponse:
        """The protocol's "retry later" answer, used when the deadline passes or anything
        unexpected happens; it must be right even if the request was never read."""
