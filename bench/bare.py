"""The bare reference: the smallest aiohttp + asyncpg server doing tolem's money work, no layers.

It writes the same tables (so the same constraints, triggers and indexes cost the same) and keeps
the guarantees that matter: an idempotent insert per (provider, transaction id), a ledger
transfer and the balance update in the same transaction, replays answered from the stored row.
What it leaves out is everything else tolem does per request: protocol parsing and validation,
credentials, allow-lists, deadlines, the canonical log line, metrics.

    python -m bench.bare --dsn DSN --port P [--workers N] [--pool 8] --provider-id ID

GET /check?n&code            one SELECT by payment code
GET /pay?n&id&code&amount    one statement: insert (on conflict nothing), transfer, balance
GET /reserve?n&id&code&amount  insert a reserved payment (two-phase, first step)
GET /perform?n&id            credit a reservation once, under its row lock
Every answer is `{"n": N, "op": OP, "ok": true|false}`: `n` is echoed so the load generator can
pair answers with requests.

GET /osmp?command=check|pay&txn_id&account&sum[&txn_date]   the same check and one-step pay,
answered with an OSMP XML body of the same shape as tolem's (osmp_txn_id, prv_txn, sum, result,
comment; a check's payer name), so that the wire costs compare too.
"""

import argparse
import asyncio
import multiprocessing
import signal
from typing import Any, Final

import asyncpg
import orjson
from aiohttp import web

CHECK: Final = """
SELECT a.status FROM payers py JOIN accounts a ON a.id = py.account_id WHERE py.payment_code = $1
"""
CHECK_NAMED: Final = """
SELECT a.status, py.name FROM payers py JOIN accounts a ON a.id = py.account_id
 WHERE py.payment_code = $1
"""
# Data-modifying CTEs all see the same snapshot and run to completion, so the three writes are
# one statement and one round trip; the transfer and the balance only follow a fresh insert.
PAY: Final = """
WITH pr AS (SELECT id, currency, clearing_ledger_account_id FROM providers WHERE id = $1 AND enabled),
py AS (SELECT py.id, py.account_id, a.ledger_account_id
         FROM payers py JOIN accounts a ON a.id = py.account_id
        WHERE py.payment_code = $3 AND a.status = 'active'),
ins AS (INSERT INTO payments (provider_id, external_id, payer_id, account_id, amount_minor, currency,
                              state, credited_at)
        SELECT pr.id, $2, py.id, py.account_id, $4, pr.currency, 'credited', now() FROM pr, py
        ON CONFLICT ON CONSTRAINT uq__payments__provider_id__external_id DO NOTHING
        RETURNING id, currency),
tr AS (INSERT INTO transfers (debit_ledger_account_id, credit_ledger_account_id, amount_minor,
                              currency, code, payment_id)
       SELECT pr.clearing_ledger_account_id, py.ledger_account_id, $4, ins.currency, 'topup', ins.id
         FROM ins, pr, py
       RETURNING credit_ledger_account_id, amount_minor),
bal AS (UPDATE ledger_accounts l SET balance_minor = balance_minor + tr.amount_minor
          FROM tr WHERE l.id = tr.credit_ledger_account_id RETURNING l.id)
SELECT (SELECT id FROM ins) AS id, (SELECT count(*) FROM bal) AS credited,
       (SELECT count(*) FROM py) AS payable
"""
RESERVE: Final = """
WITH pr AS (SELECT id, currency FROM providers WHERE id = $1 AND enabled),
py AS (SELECT py.id, py.account_id FROM payers py JOIN accounts a ON a.id = py.account_id
        WHERE py.payment_code = $3 AND a.status = 'active'),
ins AS (INSERT INTO payments (provider_id, external_id, payer_id, account_id, amount_minor, currency,
                              state)
        SELECT pr.id, $2, py.id, py.account_id, $4, pr.currency, 'reserved' FROM pr, py
        ON CONFLICT ON CONSTRAINT uq__payments__provider_id__external_id DO NOTHING
        RETURNING id)
SELECT (SELECT id FROM ins) AS id, (SELECT count(*) FROM py) AS payable
"""
# The row lock makes concurrent performs of one payment queue; the loser then sees 'credited'.
PERFORM: Final = """
WITH p AS (SELECT id, state FROM payments WHERE provider_id = $1 AND external_id = $2 FOR UPDATE),
up AS (UPDATE payments SET state = 'credited', credited_at = now() FROM p
        WHERE payments.id = p.id AND p.state = 'reserved'
       RETURNING payments.id, payments.account_id, payments.amount_minor, payments.currency),
tr AS (INSERT INTO transfers (debit_ledger_account_id, credit_ledger_account_id, amount_minor,
                              currency, code, payment_id)
       SELECT pr.clearing_ledger_account_id, a.ledger_account_id, up.amount_minor, up.currency,
              'topup', up.id
         FROM up JOIN accounts a ON a.id = up.account_id JOIN providers pr ON pr.id = $1
       RETURNING credit_ledger_account_id, amount_minor),
bal AS (UPDATE ledger_accounts l SET balance_minor = balance_minor + tr.amount_minor
          FROM tr WHERE l.id = tr.credit_ledger_account_id RETURNING l.id)
SELECT (SELECT state FROM p) AS before, (SELECT count(*) FROM bal) AS credited
"""
REPLAY: Final = """
SELECT p.id, amount_minor, py.payment_code FROM payments p JOIN payers py ON py.id = p.payer_id
 WHERE p.provider_id = $1 AND p.external_id = $2
"""

POOL: Final = web.AppKey("pool", asyncpg.Pool)
PROVIDER: Final = web.AppKey("provider", int)


def _answer(n: str, op: str, ok: bool) -> web.Response:
    return web.Response(body=orjson.dumps({"n": int(n), "op": op, "ok": ok}), content_type="application/json")


async def healthz(_request: web.Request) -> web.Response:
    """Up."""
    return web.Response(text="ok")


async def check(request: web.Request) -> web.Response:
    """May this code be paid."""
    q = request.query
    async with request.app[POOL].acquire() as conn:
        status = await conn.fetchval(CHECK, q["code"])
    return _answer(q["n"], "check", status == "active")


async def _replayed(conn: Any, provider: int, q: Any) -> bool:
    row = await conn.fetchrow(REPLAY, provider, q["id"])
    return row is not None and row["amount_minor"] == int(q["amount"]) and row["payment_code"] == q["code"]


async def pay(request: web.Request) -> web.Response:
    """One-phase pay, exactly once per id."""
    q = request.query
    provider = request.app[PROVIDER]
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(PAY, provider, q["id"], q["code"], int(q["amount"]))
        if row["id"] is not None:
            return _answer(q["n"], "pay", row["credited"] == 1)
        ok = bool(row["payable"]) and await _replayed(conn, provider, q)
    return _answer(q["n"], "pay", ok)


async def reserve(request: web.Request) -> web.Response:
    """Two-phase, first step."""
    q = request.query
    provider = request.app[PROVIDER]
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(RESERVE, provider, q["id"], q["code"], int(q["amount"]))
        if row["id"] is not None:
            return _answer(q["n"], "reserve", True)
        ok = bool(row["payable"]) and await _replayed(conn, provider, q)
    return _answer(q["n"], "reserve", ok)


async def perform(request: web.Request) -> web.Response:
    """Two-phase, second step: credits once; a repeat replays."""
    q = request.query
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(PERFORM, request.app[PROVIDER], q["id"])
    ok = row["before"] == "credited" or (row["before"] == "reserved" and row["credited"] == 1)
    return _answer(q["n"], "commit", ok)


_XML_HEAD: Final = '<?xml version="1.0" encoding="UTF-8"?>\n<response><osmp_txn_id>'
_REFUSED: Final = "</osmp_txn_id><result>300</result><comment>request refused</comment></response>\n"


def _xml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml", charset="utf-8")


async def osmp(request: web.Request) -> web.Response:
    """check and one-step pay over OSMP's parameters, XML out; no validation beyond int()."""
    q = request.query
    txn = q["txn_id"]
    provider = request.app[PROVIDER]
    if q["command"] == "check":
        async with request.app[POOL].acquire() as conn:
            row = await conn.fetchrow(CHECK_NAMED, q["account"])
        if row is None or row["status"] != "active":
            return _xml(_XML_HEAD + txn + _REFUSED)
        name = row["name"].split()[0]
        return _xml(
            f"{_XML_HEAD}{txn}</osmp_txn_id><result>0</result><comment>OK</comment>"
            f'<fields><field1 name="name">{name}</field1></fields></response>\n'
        )
    whole, _, cents = q["sum"].partition(".")
    amount = int(whole) * 100 + int(cents or 0)
    external = str(int(txn))
    async with request.app[POOL].acquire() as conn:
        row = await conn.fetchrow(PAY, provider, external, q["account"], amount)
        payment = row["id"]
        if payment is None:
            old = await conn.fetchrow(REPLAY, provider, external) if row["payable"] else None
            if old is None or old["amount_minor"] != amount or old["payment_code"] != q["account"]:
                return _xml(_XML_HEAD + txn + _REFUSED)
            payment = old["id"]
    return _xml(
        f"{_XML_HEAD}{txn}</osmp_txn_id><prv_txn>{payment}</prv_txn><sum>{q['sum']}</sum>"
        "<result>0</result><comment>OK</comment></response>\n"
    )


async def _keep(_conn: asyncpg.Connection) -> None:
    """Release hook that runs nothing."""


def make_app(dsn: str, pool_size: int, provider_id: int) -> web.Application:
    """The application; the pool lives in its lifecycle."""
    app = web.Application()
    app[PROVIDER] = provider_id

    async def database(app: web.Application) -> Any:
        # No reset query on release, as tolem: neither keeps session state on a connection.
        app[POOL] = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size, reset=_keep)
        yield
        await app[POOL].close()

    app.cleanup_ctx.append(database)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/check", check)
    app.router.add_get("/pay", pay)
    app.router.add_get("/reserve", reserve)
    app.router.add_get("/perform", perform)
    app.router.add_get("/osmp", osmp)
    return app


def serve_one(dsn: str, port: int, pool_size: int, provider_id: int, reuse_port: bool) -> None:
    """One process, with uvloop as tolem serve has."""
    loop: asyncio.AbstractEventLoop | None = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = None
    web.run_app(
        make_app(dsn, pool_size, provider_id),
        host="127.0.0.1",
        port=port,
        access_log=None,
        reuse_port=reuse_port,
        print=None,
        loop=loop,
    )


def main(argv: list[str] | None = None) -> None:
    """Serves with N processes sharing the port, as tolem serve --workers N does."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--provider-id", type=int, required=True)
    args = parser.parse_args(argv)
    if args.workers == 1:
        serve_one(args.dsn, args.port, args.pool, args.provider_id, reuse_port=False)
        return
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=serve_one, args=(args.dsn, args.port, args.pool, args.provider_id, True))
        for _ in range(args.workers)
    ]
    for worker in workers:
        worker.start()

    def stop(_signum: int, _frame: object) -> None:
        for worker in workers:
            worker.terminate()

    signal.signal(signal.SIGTERM, stop)
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
