-- 0014: every credit, reversal and void reaches the hoster's billing exactly once.
--
-- Why a transactional outbox: the cabinet balance lives in the billing (BILLmanager, WHMCS),
-- not here. An event written by the application after its commit is lost when the process dies
-- in between; one written before the commit announces money that may never move. So the
-- database writes the event itself, from a trigger on payments, in the very transaction that
-- changes the payment's state. Every path is covered whatever calls it (tolem_accept,
-- tolem_perform, tolem_cancel, tolem_void, tolem_expire and the reservation sweep), and a
-- rolled-back transfer leaves no event behind.
--
-- Why these keys: (payment_id, type) is unique, so a payment yields at most one event of each
-- kind however often its state is written; `id` is the receiver's deduplication key and never
-- changes between attempts. `position` orders events; `xid` (the writing transaction) lets the
-- pull feed hand out only events no running transaction can still precede (see the admin
-- API's /admin/events).
--
-- Payments written before this migration have no events and get none: the billing learnt of
-- them another way, and replaying the past would credit it twice.

COMMENT ON COLUMN accounts.external_ref IS 'The billing''s client id of this account (BILLmanager/WHMCS), or an older billing''s id set by imports; the admin API binds accounts by it.';

ALTER TABLE payers
    ADD COLUMN external_ref text,
    ADD CONSTRAINT uq__payers__external_ref UNIQUE (external_ref),
    ADD CONSTRAINT ck__payers__external_ref CHECK (char_length(external_ref) BETWEEN 1 AND 64);
COMMENT ON COLUMN payers.external_ref IS 'The billing''s payer (profile) id this payer was created for; set once, never changed.';

-- A payer's billing id is part of its identity, like its code: set once, kept forever.
CREATE OR REPLACE FUNCTION tolem_protect_payer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.payment_code IS DISTINCT FROM OLD.payment_code
       OR NEW.account_id IS DISTINCT FROM OLD.account_id
       OR (OLD.external_ref IS NOT NULL AND NEW.external_ref IS DISTINCT FROM OLD.external_ref) THEN
        RAISE EXCEPTION 'payers keep their payment code, account and billing id forever'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION tolem_protect_payer() IS 'Keeps payment codes and billing ids bound to their payer and account forever.';

CREATE TABLE outbox_events (
    position        bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__outbox_events PRIMARY KEY,
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    type            text        NOT NULL,
    payment_id      bigint      NOT NULL,
    account_id      bigint      NOT NULL,
    payer_id        bigint      NOT NULL,
    amount_minor    bigint      NOT NULL,
    currency        char(3)     NOT NULL,
    occurred_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    xid             xid8        NOT NULL DEFAULT pg_current_xact_id(),
    state           text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    queued_at       timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz DEFAULT now(),
    lease_until     timestamptz,
    last_error      text,
    delivered_at    timestamptz,
    sink            text,
    remote_ref      text,
    CONSTRAINT uq__outbox_events__id UNIQUE (id),
    CONSTRAINT uq__outbox_events__payment_id__type UNIQUE (payment_id, type),
    CONSTRAINT fk__outbox_events__payment_id__payments FOREIGN KEY (payment_id)
        REFERENCES payments (id) ON DELETE RESTRICT,
    CONSTRAINT fk__outbox_events__account_id__accounts FOREIGN KEY (account_id)
        REFERENCES accounts (id) ON DELETE RESTRICT,
    CONSTRAINT fk__outbox_events__payer_id__payers FOREIGN KEY (payer_id)
        REFERENCES payers (id) ON DELETE RESTRICT,
    CONSTRAINT ck__outbox_events__type CHECK (type IN ('payment.credited', 'payment.reversed', 'payment.voided')),
    CONSTRAINT ck__outbox_events__amount CHECK (amount_minor > 0),
    CONSTRAINT ck__outbox_events__currency CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck__outbox_events__attempts CHECK (attempts >= 0),
    CONSTRAINT ck__outbox_events__last_error CHECK (char_length(last_error) <= 500),
    CONSTRAINT ck__outbox_events__sink CHECK (char_length(sink) BETWEEN 1 AND 32),
    CONSTRAINT ck__outbox_events__remote_ref CHECK (char_length(remote_ref) BETWEEN 1 AND 200),
    -- Only a pending event waits for an attempt or is leased; only a delivered one has a time.
    CONSTRAINT ck__outbox_events__state CHECK (
        (state = 'pending' AND next_attempt_at IS NOT NULL AND delivered_at IS NULL)
        OR (state = 'delivered' AND next_attempt_at IS NULL AND lease_until IS NULL
            AND delivered_at IS NOT NULL AND sink IS NOT NULL AND attempts > 0)
        OR (state IN ('dead', 'manual') AND next_attempt_at IS NULL AND lease_until IS NULL
            AND delivered_at IS NULL)
    )
);
CREATE INDEX ix__outbox_events__due ON outbox_events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX ix__outbox_events__account_id__pending ON outbox_events (account_id, position)
    WHERE state = 'pending';
CREATE INDEX ix__outbox_events__xid__position ON outbox_events (xid, position);
CREATE INDEX ix__outbox_events__state__position ON outbox_events (state, position);
COMMENT ON TABLE outbox_events IS 'Credits, reversals and voids to tell the billing, written with the ledger change; identity and payload never change, only the delivery columns.';
COMMENT ON COLUMN outbox_events.position IS 'Order of writing; the dispatcher delivers an account''s events in this order.';
COMMENT ON COLUMN outbox_events.id IS 'Stable event id sent with every attempt, for the receiver to deduplicate.';
COMMENT ON COLUMN outbox_events.type IS 'payment.credited, payment.reversed or payment.voided.';
COMMENT ON COLUMN outbox_events.payment_id IS 'The payment whose state change this is; one event per payment and type.';
COMMENT ON COLUMN outbox_events.account_id IS 'Account of the payment (its billing client id is accounts.external_ref).';
COMMENT ON COLUMN outbox_events.payer_id IS 'Payer of the payment (its billing profile id is payers.external_ref).';
COMMENT ON COLUMN outbox_events.amount_minor IS 'The payment''s amount, minor units.';
COMMENT ON COLUMN outbox_events.currency IS 'Currency of amount_minor.';
COMMENT ON COLUMN outbox_events.occurred_at IS 'When the credit, reversal or void happened (the payment''s credited_at or cancelled_at).';
COMMENT ON COLUMN outbox_events.created_at IS 'When the event was written: the same transaction as the ledger change.';
COMMENT ON COLUMN outbox_events.xid IS 'The writing transaction; the pull feed returns an event only once every older transaction has ended.';
COMMENT ON COLUMN outbox_events.state IS 'pending (to deliver), delivered, dead (given up or refused: an operator retries it), manual (the sink does not carry this kind).';
COMMENT ON COLUMN outbox_events.attempts IS 'Deliveries started (claims); an operator''s retry keeps the count.';
COMMENT ON COLUMN outbox_events.queued_at IS 'When the event last entered the queue (written, or retried by an operator); it is given up TOLEM_DELIVER_GIVE_UP_HOURS later.';
COMMENT ON COLUMN outbox_events.next_attempt_at IS 'Earliest next attempt of a pending event (backoff); NULL otherwise.';
COMMENT ON COLUMN outbox_events.lease_until IS 'A dispatcher claimed it until then; past it the event is claimable again (the dispatcher died).';
COMMENT ON COLUMN outbox_events.last_error IS 'Why the last attempt did not deliver.';
COMMENT ON COLUMN outbox_events.delivered_at IS 'When the receiver confirmed it.';
COMMENT ON COLUMN outbox_events.sink IS 'Receiver of the latest attempt (webhook, billmanager, whmcs).';
COMMENT ON COLUMN outbox_events.remote_ref IS 'What an earlier attempt left at the receiver (e.g. its payment id), saved before it is relied on.';

CREATE FUNCTION tolem_outbox_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_events (type, payment_id, account_id, payer_id, amount_minor, currency,
                               occurred_at)
    VALUES (CASE NEW.state WHEN 'credited' THEN 'payment.credited'
                           WHEN 'reversed' THEN 'payment.reversed'
                           ELSE 'payment.voided' END,
            NEW.id, NEW.account_id, NEW.payer_id, NEW.amount_minor, NEW.currency,
            CASE NEW.state WHEN 'credited' THEN NEW.credited_at ELSE NEW.cancelled_at END)
    ON CONFLICT ON CONSTRAINT uq__outbox_events__payment_id__type DO NOTHING;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION tolem_outbox_record() IS 'Writes the outbox event of a payment that became credited, reversed or voided.';
-- The WHEN clauses keep a reservation (and a write that leaves the state alone) from calling
-- the function at all.
CREATE TRIGGER tr__payments__outbox_insert AFTER INSERT ON payments
    FOR EACH ROW WHEN (NEW.state IN ('credited', 'reversed', 'voided'))
    EXECUTE FUNCTION tolem_outbox_record();
CREATE TRIGGER tr__payments__outbox_update AFTER UPDATE OF state ON payments
    FOR EACH ROW WHEN (NEW.state IS DISTINCT FROM OLD.state AND NEW.state IN ('credited', 'reversed', 'voided'))
    EXECUTE FUNCTION tolem_outbox_record();

CREATE FUNCTION tolem_outbox_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'outbox events are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF (NEW.position, NEW.id, NEW.type, NEW.payment_id, NEW.account_id, NEW.payer_id,
        NEW.amount_minor, NEW.currency, NEW.occurred_at, NEW.created_at, NEW.xid)
       IS DISTINCT FROM
       (OLD.position, OLD.id, OLD.type, OLD.payment_id, OLD.account_id, OLD.payer_id,
        OLD.amount_minor, OLD.currency, OLD.occurred_at, OLD.created_at, OLD.xid) THEN
        RAISE EXCEPTION 'outbox event % keeps its identity and payload; only delivery columns change', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION tolem_outbox_guard() IS 'Lets only the delivery columns of an outbox event change, and no event be deleted.';
CREATE TRIGGER tr__outbox_events__guard BEFORE UPDATE OR DELETE ON outbox_events
    FOR EACH ROW EXECUTE FUNCTION tolem_outbox_guard();
CREATE TRIGGER tr__outbox_events__no_truncate BEFORE TRUNCATE ON outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();
