"""The peer: paytechuz's FastAPI Payme handler, used as its README shows, for the comparison.

Runs only inside the peer's own virtual environment (see bench/peer/__init__.py); tolem never
imports it. The account model is the smallest one the handler needs (id, amount) plus a balance
that a successful payment raises, as a top-up would.

    PEER_DSN=postgresql+psycopg2://... python peer_app.py --setup ACCOUNTS   # tables and accounts
    PEER_DSN=... uvicorn peer_app:app --workers N                           # serve
"""

import os
import sys
from decimal import Decimal
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse
from paytechuz.integrations.fastapi import PaymeWebhookHandler
from paytechuz.integrations.fastapi.models import Base as PaytechBase
from sqlalchemy import Column, Integer, Numeric, create_engine, text, update
from sqlalchemy.orm import Session, declarative_base, sessionmaker

KEY = os.environ.get("PEER_KEY", "bench-key")
# The handler runs synchronous SQLAlchemy inside `async def`: a request waiting for a pooled
# connection blocks the event loop, so the requests holding connections never finish and a
# bounded pool smaller than the concurrency deadlocks until the pool's timeout. Overflow up to
# the load's concurrency keeps it moving; that is the best this stack can be configured for.
engine = create_engine(
    os.environ["PEER_DSN"],
    pool_size=int(os.environ.get("PEER_POOL", "8")),
    max_overflow=int(os.environ.get("PEER_OVERFLOW", "64")),
)
SessionLocal = sessionmaker(bind=engine)
Base = declarative_base()


class Account(Base):  # type: ignore[misc,valid-type]
    """A hosting account: what Payme's `account.id` names."""

    __tablename__ = "bench_accounts"
    id = Column(Integer, primary_key=True)
    amount = Column(Numeric(14, 2), nullable=False, default=0)
    balance = Column(Numeric(14, 2), nullable=False, default=0)


class TopUp(PaymeWebhookHandler):  # type: ignore[misc]
    """Credits the account when Payme performs."""

    def successfully_payment(self, params: dict[str, Any], transaction: Any) -> None:
        # One UPDATE, so that concurrent credits of one account add up.
        self.db.execute(
            update(Account)
            .where(Account.id == int(transaction.account_id))
            .values(balance=Account.balance + Decimal(str(transaction.amount)))
        )
        self.db.commit()


def get_db() -> Any:
    """A session per request, as the package's README does."""
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


app = FastAPI()


@app.get("/healthz")
def healthz() -> PlainTextResponse:
    """Up."""
    return PlainTextResponse("ok")


@app.post("/payments/payme/webhook")
async def payme_webhook(request: Request, db: Session = Depends(get_db)) -> Any:  # noqa: B008
    """Payme's Merchant API, by the package."""
    handler = TopUp(
        db=db,
        payme_id="bench",
        payme_key=KEY,
        account_model=Account,
        account_field="id",
        amount_field="amount",
        one_time_payment=False,
    )
    return await handler.handle_webhook(request)


def setup(accounts: int) -> None:
    """Creates the package's table and ours, and `accounts` accounts."""
    PaytechBase.metadata.create_all(engine)
    Base.metadata.create_all(engine)
    with SessionLocal() as db:
        db.add_all(Account(id=n, amount=0, balance=0) for n in range(1, accounts + 1))
        db.commit()
        db.execute(text("ANALYZE"))
        db.commit()


if __name__ == "__main__" and sys.argv[1:2] == ["--setup"]:
    setup(int(sys.argv[2]))
