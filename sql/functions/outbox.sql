-- The outbox: every credit, reversal and void writes its event in the ledger's transaction,
-- and an event keeps its identity and payload forever (only delivery columns change).
--
-- Current definitions, applied by `tolem migrate` after the migrations whenever this file's
-- checksum differs from the recorded one (src/tolem/db/migrate.py has the rules). Everything
-- here is CREATE OR REPLACE, so applying it again changes nothing.

CREATE OR REPLACE FUNCTION tolem_outbox_record() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE OR REPLACE TRIGGER tr__payments__outbox_insert AFTER INSERT ON payments
    FOR EACH ROW WHEN (NEW.state IN ('credited', 'reversed', 'voided'))
    EXECUTE FUNCTION tolem_outbox_record();
CREATE OR REPLACE TRIGGER tr__payments__outbox_update AFTER UPDATE OF state ON payments
    FOR EACH ROW WHEN (NEW.state IS DISTINCT FROM OLD.state AND NEW.state IN ('credited', 'reversed', 'voided'))
    EXECUTE FUNCTION tolem_outbox_record();

CREATE OR REPLACE FUNCTION tolem_outbox_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE OR REPLACE TRIGGER tr__outbox_events__guard BEFORE UPDATE OR DELETE ON outbox_events
    FOR EACH ROW EXECUTE FUNCTION tolem_outbox_guard();
CREATE OR REPLACE TRIGGER tr__outbox_events__no_truncate BEFORE TRUNCATE ON outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();
