-- The money-moving operations: accept (pay or reserve), perform, cancel, void, and the expiry of
-- reservations. Each runs inside the caller's single statement, so a pay is one round trip.
--
-- Current definitions, applied by `tolem migrate` after the migrations whenever this file's
-- checksum differs from the recorded one (src/tolem/db/migrate.py has the rules). Every credit
-- and reversal goes through tolem_post (ledger.sql).
--
-- Lock order, the same in every operation, keeps concurrent pays, performs and cancels of the
-- same account free of deadlocks: the payment row first, then the one customer ledger row.

CREATE OR REPLACE FUNCTION tolem_result(p_outcome text, p_replayed boolean, p payments)
RETURNS tolem_payment_result LANGUAGE sql STABLE AS $$
    SELECT ROW(p_outcome, p_replayed, p.id, p.provider_id, p.external_id, p.account_id,
               p.payer_id, (SELECT payment_code FROM payers WHERE id = p.payer_id),
               p.amount_minor, p.currency, p.state, p.provider_time, p.created_at,
               p.credited_at, p.cancelled_at, p.cancel_reason)::tolem_payment_result;
$$;
COMMENT ON FUNCTION tolem_result(text, boolean, payments) IS 'Packs a payment row with an outcome.';

CREATE OR REPLACE FUNCTION tolem_outcome(p_outcome text) RETURNS tolem_payment_result
LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(p_outcome, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL)::tolem_payment_result;
$$;
COMMENT ON FUNCTION tolem_outcome(text) IS 'An outcome that concerns no stored payment (refusals).';

-- A repeat of an accepted request: the same code and amount replay it, anything else conflicts.
CREATE OR REPLACE FUNCTION tolem_replay(p payments, p_code text, p_amount bigint)
RETURNS tolem_payment_result LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p.amount_minor = p_amount
       AND EXISTS (SELECT 1 FROM payers WHERE id = p.payer_id AND payment_code = p_code) THEN
        RETURN tolem_result('ok', true, p);
    END IF;
    RETURN tolem_result('conflict', true, p);
END;
$$;
COMMENT ON FUNCTION tolem_replay(payments, text, bigint) IS 'Classifies a repeated transaction id as replay or conflict.';

-- Voids a reservation that outlived its provider's time limit; returns the row as it is now.
CREATE OR REPLACE FUNCTION tolem_expire(INOUT p payments, p_expire_before timestamptz, p_reason integer)
LANGUAGE plpgsql AS $$
BEGIN
    IF p.state = 'reserved' AND p_expire_before IS NOT NULL
       AND coalesce(p.provider_time, p.created_at) < p_expire_before THEN
        UPDATE payments SET state = 'voided', cancelled_at = now(), cancel_reason = p_reason
         WHERE id = p.id RETURNING * INTO p;
    END IF;
END;
$$;
COMMENT ON FUNCTION tolem_expire(payments, timestamptz, integer) IS 'Voids a stale reservation.';

-- pay (p_credit) or reserve (NOT p_credit) a new payment, or replay an earlier one. The new
-- payment's path comes first and reads only what it needs; refusals are decided up front but
-- answered only after looking for a stored payment, so a repeat gets the first answer whatever
-- changed since (limits, a blocked account, a disabled provider, the currency).
CREATE OR REPLACE FUNCTION tolem_accept(
    p_provider_id integer, p_external_id text, p_code text, p_amount bigint,
    p_provider_time timestamptz, p_provider_time_raw text, p_credit boolean,
    p_expire_before timestamptz DEFAULT NULL, p_expire_reason integer DEFAULT NULL,
    p_currency char(3) DEFAULT NULL
) RETURNS tolem_payment_result LANGUAGE plpgsql AS $$
DECLARE
    v_pay      payments;
    v_provider record;
    v_payer    record;
    v_refusal  text;
BEGIN
    SELECT enabled, min_amount_minor, max_amount_minor, currency, clearing_ledger_account_id
      INTO v_provider FROM providers WHERE id = p_provider_id;
    SELECT py.id AS payer_id, py.account_id, a.status, a.ledger_account_id, l.currency
      INTO v_payer
      FROM payers py
      JOIN accounts a ON a.id = py.account_id
      JOIN ledger_accounts l ON l.id = a.ledger_account_id
     WHERE py.payment_code = p_code;
    v_refusal := CASE
        WHEN v_provider.enabled IS NOT TRUE THEN 'provider_disabled'
        WHEN v_provider.currency <> p_currency THEN 'currency_refused'
        WHEN p_amount < v_provider.min_amount_minor THEN 'amount_too_small'
        WHEN p_amount > v_provider.max_amount_minor THEN 'amount_too_large'
        WHEN v_payer.payer_id IS NULL THEN 'unknown_code'
        WHEN v_payer.currency <> v_provider.currency THEN 'currency_refused'
        WHEN v_payer.status <> 'active' THEN 'account_blocked'
    END;

    IF v_refusal IS NULL THEN
        INSERT INTO payments (provider_id, external_id, payer_id, account_id, amount_minor, currency,
                              state, provider_time, provider_time_raw, credited_at)
        VALUES (p_provider_id, p_external_id, v_payer.payer_id, v_payer.account_id, p_amount,
                v_provider.currency, CASE WHEN p_credit THEN 'credited' ELSE 'reserved' END,
                p_provider_time, p_provider_time_raw, CASE WHEN p_credit THEN now() END)
        ON CONFLICT ON CONSTRAINT uq__payments__provider_id__external_id DO NOTHING
        RETURNING * INTO v_pay;
        IF FOUND THEN
            IF p_credit THEN
                PERFORM tolem_post(v_pay.id, 'topup', v_payer.ledger_account_id,
                                   v_provider.clearing_ledger_account_id, p_amount,
                                   v_provider.currency);
            END IF;
            -- The payer was found by this very code: no need to read it back.
            RETURN ROW('ok', false, v_pay.id, v_pay.provider_id, v_pay.external_id,
                       v_pay.account_id, v_pay.payer_id, p_code, v_pay.amount_minor,
                       v_pay.currency, v_pay.state, v_pay.provider_time, v_pay.created_at,
                       v_pay.credited_at, v_pay.cancelled_at, v_pay.cancel_reason)::tolem_payment_result;
        END IF;
    END IF;

    -- A refusal, or a twin request committed this id first (the insert waited on the unique key).
    SELECT * INTO v_pay FROM payments WHERE provider_id = p_provider_id AND external_id = p_external_id;
    IF NOT FOUND THEN
        RETURN tolem_outcome(v_refusal);
    END IF;
    IF v_pay.state = 'reserved' AND p_expire_before IS NOT NULL THEN
        SELECT * INTO v_pay FROM payments WHERE id = v_pay.id FOR UPDATE;
        v_pay := tolem_expire(v_pay, p_expire_before, p_expire_reason);
    END IF;
    RETURN tolem_replay(v_pay, p_code, p_amount);
END;
$$;
COMMENT ON FUNCTION tolem_accept(integer, text, text, bigint, timestamptz, text, boolean, timestamptz, integer, char)
    IS 'Pay or reserve exactly once per (provider, external id); repeats replay or conflict; never across currencies.';

-- Finds a payment for a follow-up operation and locks it: by the provider's id or by ours.
CREATE OR REPLACE FUNCTION tolem_lock_payment(p_provider_id integer, p_external_id text, p_payment_id bigint)
RETURNS payments LANGUAGE plpgsql AS $$
DECLARE
    v_pay payments;
BEGIN
    IF p_external_id IS NOT NULL THEN
        SELECT * INTO v_pay FROM payments
         WHERE provider_id = p_provider_id AND external_id = p_external_id
           AND (p_payment_id IS NULL OR id = p_payment_id)
           FOR UPDATE;
    ELSE
        SELECT * INTO v_pay FROM payments
         WHERE provider_id = p_provider_id AND id = p_payment_id FOR UPDATE;
    END IF;
    RETURN v_pay;
END;
$$;
COMMENT ON FUNCTION tolem_lock_payment(integer, text, bigint) IS 'SELECT … FOR UPDATE of one payment of a provider.';

CREATE OR REPLACE FUNCTION tolem_perform(
    p_provider_id integer, p_external_id text, p_payment_id bigint,
    p_expire_before timestamptz DEFAULT NULL, p_expire_reason integer DEFAULT NULL
) RETURNS tolem_payment_result LANGUAGE plpgsql AS $$
DECLARE
    v_pay      payments;
    v_clearing bigint;
    v_customer bigint;
BEGIN
    v_pay := tolem_lock_payment(p_provider_id, p_external_id, p_payment_id);
    IF v_pay.id IS NULL THEN
        RETURN tolem_outcome('not_found');
    END IF;
    IF v_pay.state = 'credited' THEN
        RETURN tolem_result('ok', true, v_pay);
    END IF;
    v_pay := tolem_expire(v_pay, p_expire_before, p_expire_reason);
    IF v_pay.state <> 'reserved' THEN
        RETURN tolem_result('wrong_state', false, v_pay);
    END IF;
    SELECT clearing_ledger_account_id INTO v_clearing FROM providers WHERE id = p_provider_id;
    SELECT ledger_account_id INTO v_customer FROM accounts WHERE id = v_pay.account_id;
    PERFORM tolem_post(v_pay.id, 'topup', v_customer, v_clearing, v_pay.amount_minor, v_pay.currency);
    UPDATE payments SET state = 'credited', credited_at = now() WHERE id = v_pay.id
    RETURNING * INTO v_pay;
    RETURN tolem_result('ok', false, v_pay);
END;
$$;
COMMENT ON FUNCTION tolem_perform(integer, text, bigint, timestamptz, integer)
    IS 'Credits a reserved payment exactly once.';

CREATE OR REPLACE FUNCTION tolem_cancel(
    p_provider_id integer, p_external_id text, p_payment_id bigint, p_reason integer
) RETURNS tolem_payment_result LANGUAGE plpgsql AS $$
DECLARE
    v_pay      payments;
    v_topup    transfers;
    v_balance  bigint;
BEGIN
    v_pay := tolem_lock_payment(p_provider_id, p_external_id, p_payment_id);
    IF v_pay.id IS NULL THEN
        RETURN tolem_outcome('not_found');
    END IF;
    IF v_pay.state IN ('voided', 'reversed') THEN
        RETURN tolem_result('ok', true, v_pay);
    END IF;
    IF v_pay.state = 'reserved' THEN
        UPDATE payments SET state = 'voided', cancelled_at = now(), cancel_reason = p_reason
         WHERE id = v_pay.id RETURNING * INTO v_pay;
        RETURN tolem_result('ok', false, v_pay);
    END IF;

    -- The reversal takes the money back from the account the topup credited.
    SELECT * INTO v_topup FROM transfers WHERE payment_id = v_pay.id AND code = 'topup';
    SELECT balance_minor INTO v_balance FROM ledger_accounts
     WHERE id = v_topup.credit_ledger_account_id FOR UPDATE;
    IF v_balance < v_pay.amount_minor THEN
        -- The customer already spent the money; taking it back is a decision for a person.
        RETURN tolem_result('insufficient_funds', false, v_pay);
    END IF;
    PERFORM tolem_post(v_pay.id, 'reversal', v_topup.credit_ledger_account_id,
                       v_topup.debit_ledger_account_id, v_pay.amount_minor, v_pay.currency, v_topup.id);
    UPDATE payments SET state = 'reversed', cancelled_at = now(), cancel_reason = p_reason
     WHERE id = v_pay.id RETURNING * INTO v_pay;
    RETURN tolem_result('ok', false, v_pay);
END;
$$;
COMMENT ON FUNCTION tolem_cancel(integer, text, bigint, integer)
    IS 'Voids a reservation or reverses a credit, once; repeats replay.';

-- Void only ever ends a reservation, under the payment's row lock, and reports a credit as the
-- wrong state: some protocols report "the payer was not charged" for a payment that a
-- concurrent request may just have confirmed (Click's Complete with error < 0), which cancel
-- would reverse.
CREATE OR REPLACE FUNCTION tolem_void(
    p_provider_id integer, p_external_id text, p_payment_id bigint, p_reason integer
) RETURNS tolem_payment_result LANGUAGE plpgsql AS $$
DECLARE
    v_pay payments;
BEGIN
    v_pay := tolem_lock_payment(p_provider_id, p_external_id, p_payment_id);
    IF v_pay.id IS NULL THEN
        RETURN tolem_outcome('not_found');
    END IF;
    IF v_pay.state = 'voided' THEN
        RETURN tolem_result('ok', true, v_pay);
    END IF;
    IF v_pay.state <> 'reserved' THEN
        RETURN tolem_result('wrong_state', false, v_pay);
    END IF;
    UPDATE payments SET state = 'voided', cancelled_at = now(), cancel_reason = p_reason
     WHERE id = v_pay.id RETURNING * INTO v_pay;
    RETURN tolem_result('ok', false, v_pay);
END;
$$;
COMMENT ON FUNCTION tolem_void(integer, text, bigint, integer)
    IS 'Voids a reservation once; a credited or reversed payment is left alone (wrong_state).';

-- Sweeps reservations nobody touches any more. Several sweeps may run at once: each takes at
-- most p_limit rows with FOR UPDATE SKIP LOCKED, so they split the stale rows instead of
-- queueing, and a row being performed or cancelled right now is left to that operation. A row
-- committed as credited or voided after our snapshot is re-checked against state = 'reserved'
-- when locked and dropped, so each row is voided exactly once.
CREATE OR REPLACE FUNCTION tolem_expire_reservations(
    p_provider_id integer, p_before timestamptz, p_reason integer, p_limit integer
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    IF p_before IS NULL OR p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'tolem_expire_reservations needs a time and a positive limit'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH stale AS (
        SELECT id
          FROM payments
         WHERE provider_id = p_provider_id
           AND state = 'reserved'
           AND coalesce(provider_time, created_at) < p_before
         ORDER BY coalesce(provider_time, created_at), id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    )
    -- Same change as tolem_expire, so a swept row looks like one expired on perform.
    UPDATE payments p
       SET state = 'voided', cancelled_at = now(), cancel_reason = p_reason
      FROM stale
     WHERE p.id = stale.id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION tolem_expire_reservations(integer, timestamptz, integer, integer)
    IS 'Voids up to p_limit reservations of a provider stamped before p_before; returns how many.';
