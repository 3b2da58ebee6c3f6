"""The aggregators of the chaos runs: OSMP kiosks, Payme and Click, as each one calls tolem.

Each caller speaks its protocol over real HTTP the way its aggregator does, repeating the step
that got no answer or "retry", and normalises what it got back into an `Answer`, so that the
scenarios (bench/chaos.py, bench/deployment.py) judge every protocol alike.
"""

import base64
import contextlib
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp

from tolem.core.money import parse_amount

_RESULT = re.compile(r"<result>(-?\d+)</result>")
_PRV = re.compile(r"<prv_txn>(\d+)</prv_txn>")
# One provider per protocol, as `seed` creates them; each scenario speaks one protocol.
PROVIDERS: Final = {"osmp": "kiosk", "payme": "wallet", "click": "click"}
PAYME_KEY: Final = "bench-key"
CLICK_SECRET: Final = "bench-secret"  # noqa: S105 - a throwaway cluster's provider
# Answers normalised across protocols: 0 acknowledged, RETRY "try again later" (or nothing).
OK: Final = 0
RETRY: Final = 1


@dataclass(frozen=True)
class Answer:
    """What one pay got back, normalised: `result` is OK, RETRY, None (no answer at all) or the
    protocol's own final code; `ref` is our payment id on success; `fingerprint` is what must be
    identical between a payment's first answer and every replay of it."""

    result: int | None
    at: float
    ref: str | None = None
    fingerprint: str = ""


def no_answer() -> Answer:
    """A connection failure or timeout."""
    return Answer(None, time.monotonic())


class Caller:
    """An aggregator: pays (`txn`, code, decimal amount) the way its protocol does."""

    def __init__(self, session: aiohttp.ClientSession, url: str, timeout: float, provider: str) -> None:
        self.session = session
        self.url = f"{url}/gw/{provider}"
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.sent = 0
        self.slowest = 0.0  # seconds, of any single HTTP request

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Counts one request and keeps the slowest duration."""
        self.sent += 1
        started = time.monotonic()
        try:
            yield
        finally:
            self.slowest = max(self.slowest, time.monotonic() - started)

    async def prepare(self, txn: str, code: str, amount: str) -> Answer | None:
        """The first step of a two-step protocol (None for single-step ones)."""
        return None

    async def pay(self, txn: str, code: str, amount: str) -> Answer:
        """One whole payment attempt; two-step callers resume after a step that succeeded."""
        raise NotImplementedError


class Kiosk(Caller):
    """OSMP: a single `pay` request per attempt."""

    async def pay(self, txn: str, code: str, amount: str) -> Answer:
        params = {
            "command": "pay",
            "txn_id": txn,
            "account": code,
            "sum": amount,
            "txn_date": datetime.now(UTC).strftime("%Y%m%d%H%M%S"),
        }
        try:
            with self.timed():
                async with self.session.get(self.url, params=params, timeout=self.timeout) as response:
                    body = await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return no_answer()
        match = _RESULT.search(body)
        if match is None:
            return no_answer()
        prv = _PRV.search(body)
        return Answer(int(match.group(1)), time.monotonic(), prv.group(1) if prv else None, body)


class Wallet(Caller):
    """Payme: CreateTransaction then PerformTransaction; like Payme, it repeats the step that
    got no answer or -32400 and never re-creates a transaction it already created."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.created: set[str] = set()
        token = base64.b64encode(f"Paycom:{PAYME_KEY}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        document = {"jsonrpc": "2.0", "id": self.sent, "method": method, "params": params}
        try:
            with self.timed():
                async with self.session.post(
                    self.url, json=document, headers=self.headers, timeout=self.timeout
                ) as response:
                    body: dict[str, Any] = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return body

    @staticmethod
    def _failed(body: dict[str, Any] | None) -> Answer | None:
        if body is None or body.get("error", {}).get("code") == -32400:
            return Answer(RETRY if body else None, time.monotonic())
        if "error" in body:
            return Answer(int(body["error"]["code"]), time.monotonic())
        return None

    async def prepare(self, txn: str, code: str, amount: str) -> Answer:
        params = {
            "id": txn,
            "time": int(time.time() * 1000),
            "amount": parse_amount(amount),
            "account": {"code": code},
        }
        created = await self._call("CreateTransaction", params)
        failed = self._failed(created)
        if failed is not None:
            return failed
        assert created is not None
        self.created.add(txn)
        result = created["result"]
        return Answer(OK, time.monotonic(), str(result["transaction"]), str(result["transaction"]))

    async def pay(self, txn: str, code: str, amount: str) -> Answer:
        if txn not in self.created:
            created = await self.prepare(txn, code, amount)
            if created.result != OK:
                return created
        performed = await self._call("PerformTransaction", {"id": txn})
        failed = self._failed(performed)
        if failed is not None:
            return failed
        assert performed is not None
        result = performed["result"]
        return Answer(OK, time.monotonic(), str(result["transaction"]), json.dumps(result, sort_keys=True))


class ClickCaller(Caller):
    """Click: Prepare then Complete, signed; HTTP 503 is its "retry". A repeated Complete of a
    credited payment is -4 "Already paid" with the same confirm id, which acknowledges it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.prepared: dict[str, str] = {}

    async def _post(self, fields: dict[str, str]) -> dict[str, Any] | None:
        parts = [fields["click_trans_id"], fields["service_id"], CLICK_SECRET, fields["merchant_trans_id"]]
        parts += [fields["merchant_prepare_id"]] if fields["action"] == "1" else []
        parts += [fields["amount"], fields["action"], fields["sign_time"]]
        fields["sign_string"] = hashlib.md5("".join(parts).encode()).hexdigest()  # noqa: S324 - Click's
        try:
            with self.timed():
                async with self.session.post(self.url, data=fields, timeout=self.timeout) as response:
                    if response.status == 503:
                        return {"error": "retry"}
                    body: dict[str, Any] = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return body

    @staticmethod
    def _fields(txn: str, code: str, amount: str) -> dict[str, str]:
        return {
            "click_trans_id": txn,
            "service_id": "1",
            "click_paydoc_id": txn,
            "merchant_trans_id": code,
            "amount": amount,
            "action": "0",
            "error": "0",
            "error_note": "Success",
            "sign_time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        }

    async def prepare(self, txn: str, code: str, amount: str) -> Answer:
        prepared = await self._post(self._fields(txn, code, amount))
        if prepared is None or prepared["error"] == "retry":
            return Answer(RETRY if prepared else None, time.monotonic())
        if prepared["error"] != 0:
            return Answer(int(prepared["error"]), time.monotonic())
        ref = str(prepared["merchant_prepare_id"])
        self.prepared[txn] = ref
        return Answer(OK, time.monotonic(), ref, ref)

    async def pay(self, txn: str, code: str, amount: str) -> Answer:
        if txn not in self.prepared:
            prepared = await self.prepare(txn, code, amount)
            if prepared.result != OK:
                return prepared
        fields = self._fields(txn, code, amount)
        completed = await self._post(fields | {"action": "1", "merchant_prepare_id": self.prepared[txn]})
        if completed is None or completed["error"] == "retry":
            return Answer(RETRY if completed else None, time.monotonic())
        if completed["error"] not in (0, -4):
            return Answer(int(completed["error"]), time.monotonic())
        ref = str(completed["merchant_confirm_id"])
        return Answer(OK, time.monotonic(), ref, ref)


CALLERS: Final[dict[str, type[Caller]]] = {"osmp": Kiosk, "payme": Wallet, "click": ClickCaller}


def caller(protocol: str, session: aiohttp.ClientSession, url: str, timeout: float) -> Caller:
    """The aggregator for a protocol, aimed at that protocol's provider."""
    return CALLERS[protocol](session, url, timeout, PROVIDERS[protocol])


def txn_ids(prefix: int, count: int) -> list[str]:
    """Transaction ids every protocol accepts (digits), distinct per scenario."""
    return [f"{prefix}{n:07d}" for n in range(count)]
