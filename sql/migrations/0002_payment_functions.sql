-- 0002: the money-moving operations as server-side functions.
--
-- Why functions: each pay is one transaction and, with these, one round trip. Replay detection,
-- the idempotent insert, the transfer and the balance update happen under the same snapshot
-- rules and in the same order every time: the payment row first, then the one customer ledger
-- row. Taking locks in that fixed order is what keeps concurrent pays, performs and cancels of
-- the same account free of deadlocks. The caller still runs them inside its own transaction.

CREATE TYPE tolem_payment_result AS (
    outcome       text,
    replayed      boolean,
    id            bigint,
    provider_id   integer,
    external_id   text,
    account_id    bigint,
    payer_id      bigint,
    payment_code  text,
    amount_minor  bigint,
    currency      char(3),
    state         text,
    provider_time timestamptz,
    created_at    timestamptz,
    credited_at   timestamptz,
    cancelled_at  timestamptz,
    cancel_reason integer
);
COMMENT ON TYPE tolem_payment_result IS 'Outcome of a money operation and the payment it concerns (NULL fields when there is none).';

CREATE FUNCTION tolem_result(p_outcome text, p_replayed boolean, p payments)
RETURNS tolem_payment_result LANGUAGE sql STABLE AS $$
    SELECT ROW(p_outcome, p_replayed, p.id, p.provider_id, p.external_id, p.account_id,
               p.payer_id, (SELECT payment_code FROM payers WHERE id = p.payer_id),
               p.amount_minor, p.currency, p.state, p.provider_time, p.created_at,
               p.credited_at, p.cancelled_at, p.cancel_reason)::tolem_payment_result;
$$;
COMMENT ON FUNCTION tolem_result(text, boolean, payments) IS 'Packs a payment row with an outcome.';

CREATE FUNCTION tolem_outcome(p_outcome text) RETURNS tolem_payment_result
LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(p_outcome, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL)::tolem_payment_result;
$$;
COMMENT ON FUNCTION tolem_outcome(text) IS 'An outcome that concerns no stored payment (refusals).';

-- Credits or debits the one customer leg of a transfer and records the transfer.
CREATE FUNCTION tolem_post_transfer(
    p_payment_id bigint, p_debit bigint, p_credit bigint, p_amount bigint, p_currency char(3),
    p_code text, p_reverses bigint
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO transfers (debit_ledger_account_id, credit_ledger_account_id, amount_minor,
                           currency, code, payment_id, reverses_transfer_id)
    VALUES (p_debit, p_credit, p_amount, p_currency, p_code, p_payment_id, p_reverses)
    RETURNING id INTO v_id;
    -- Only customer accounts store a balance; clearing accounts are derived (see 0001).
    UPDATE ledger_accounts SET balance_minor = balance_minor + p_amount
     WHERE id = p_credit AND kind = 'customer';
    UPDATE ledger_accounts SET balance_minor = balance_minor - p_amount
     WHERE id = p_debit AND kind = 'customer';
    RETURN v_id;
END;
$$;
COMMENT ON FUNCTION tolem_post_transfer(bigint, bigint, bigint, bigint, char, text, bigint)
    IS 'Writes one transfer and moves the stored customer balance with it.';

-- A repeat of an accepted request: the same code and amount replay it, anything else conflicts.
CREATE FUNCTION tolem_replay(p payments, p_code text, p_amount bigint)
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

-- Voids a reservation that outlived its provider's time limit; returns whether it did.
CREATE FUNCTION tolem_expire(INOUT p payments, p_expire_before timestamptz, p_reason integer)
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

-- pay (p_credit) or reserve (NOT p_credit) a new payment, or replay an earlier one.
CREATE FUNCTION tolem_accept(
    p_provider_id integer, p_external_id text, p_code text, p_amount bigint,
    p_provider_time timestamptz, p_provider_time_raw text, p_credit boolean,
    p_expire_before timestamptz DEFAULT NULL, p_expire_reason integer DEFAULT NULL
) RETURNS tolem_payment_result LANGUAGE plpgsql AS $$
DECLARE
    v_pay      payments;
    v_provider providers;
    v_payer    record;
BEGIN
    -- A replay wins over every later change (limits, a blocked account): the aggregator must
    -- see the first answer again.
    SELECT * INTO v_pay FROM payments WHERE provider_id = p_provider_id AND external_id = p_external_id;
    IF FOUND THEN
        IF v_pay.state = 'reserved' AND p_expire_before IS NOT NULL THEN
            SELECT * INTO v_pay FROM payments WHERE id = v_pay.id FOR UPDATE;
            v_pay := tolem_expire(v_pay, p_expire_before, p_expire_reason);
        END IF;
        RETURN tolem_replay(v_pay, p_code, p_amount);
    END IF;

    SELECT * INTO v_provider FROM providers WHERE id = p_provider_id;
    IF NOT FOUND OR NOT v_provider.enabled THEN
        RETURN tolem_outcome('provider_disabled');
    END IF;
    IF p_amount < v_provider.min_amount_minor THEN
        RETURN tolem_outcome('amount_too_small');
    END IF;
    IF p_amount > v_provider.max_amount_minor THEN
        RETURN tolem_outcome('amount_too_large');
    END IF;

    SELECT py.id AS payer_id, py.account_id, a.status, a.ledger_account_id
      INTO v_payer
      FROM payers py JOIN accounts a ON a.id = py.account_id
     WHERE py.payment_code = p_code;
    IF NOT FOUND THEN
        RETURN tolem_outcome('unknown_code');
    END IF;
    IF v_payer.status <> 'active' THEN
        RETURN tolem_outcome('account_blocked');
    END IF;

    INSERT INTO payments (provider_id, external_id, payer_id, account_id, amount_minor, currency,
                          state, provider_time, provider_time_raw, credited_at)
    VALUES (p_provider_id, p_external_id, v_payer.payer_id, v_payer.account_id, p_amount,
            v_provider.currency, CASE WHEN p_credit THEN 'credited' ELSE 'reserved' END,
            p_provider_time, p_provider_time_raw, CASE WHEN p_credit THEN now() END)
    ON CONFLICT ON CONSTRAINT uq__payments__provider_id__external_id DO NOTHING
    RETURNING * INTO v_pay;
    IF NOT FOUND THEN
        -- A twin request committed this id while we waited on the unique key: replay it.
        SELECT * INTO v_pay FROM payments WHERE provider_id = p_provider_id AND external_id = p_external_id;
        RETURN tolem_replay(v_pay, p_code, p_amount);
    END IF;

    IF p_credit THEN
        PERFORM tolem_post_transfer(v_pay.id, v_provider.clearing_ledger_account_id,
                                    v_payer.ledger_account_id, p_amount, v_provider.currency,
                                    'topup', NULL);
    END IF;
    RETURN tolem_result('ok', false, v_pay);
END;
$$;
COMMENT ON FUNCTION tolem_accept(integer, text, text, bigint, timestamptz, text, boolean, timestamptz, integer)
    IS 'Pay or reserve exactly once per (provider, external id); repeats replay or conflict.';

-- Finds a payment for a follow-up operation and locks it: by the provider's id or by ours.
CREATE FUNCTION tolem_lock_payment(p_provider_id integer, p_external_id text, p_payment_id bigint)
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

CREATE FUNCTION tolem_perform(
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
    PERFORM tolem_post_transfer(v_pay.id, v_clearing, v_customer, v_pay.amount_minor,
                                v_pay.currency, 'topup', NULL);
    UPDATE payments SET state = 'credited', credited_at = now() WHERE id = v_pay.id
    RETURNING * INTO v_pay;
    RETURN tolem_result('ok', false, v_pay);
END;
$$;
COMMENT ON FUNCTION tolem_perform(integer, text, bigint, timestamptz, integer)
    IS 'Credits a reserved payment exactly once.';

CREATE FUNCTION tolem_cancel(
    p_provider_id integer, p_external_id text, p_payment_id bigint, p_reason integer
) RETURNS tolem_payment_result LANGUAGE plpgsql AS $$
DECLARE
    v_pay      payments;
    v_topup    transfers;
    v_balance  bigint;
    v_customer bigint;
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

    SELECT * INTO v_topup FROM transfers WHERE payment_id = v_pay.id AND code = 'topup';
    v_customer := v_topup.credit_ledger_account_id;
    SELECT balance_minor INTO v_balance FROM ledger_accounts WHERE id = v_customer FOR UPDATE;
    IF v_balance < v_pay.amount_minor THEN
        -- The customer already spent the money; taking it back is a decision for a person.
        RETURN tolem_result('insufficient_funds', false, v_pay);
    END IF;
    PERFORM tolem_post_transfer(v_pay.id, v_customer, v_topup.debit_ledger_account_id,
                                v_pay.amount_minor, v_pay.currency, 'reversal', v_topup.id);
    UPDATE payments SET state = 'reversed', cancelled_at = now(), cancel_reason = p_reason
     WHERE id = v_pay.id RETURNING * INTO v_pay;
    RETURN tolem_result('ok', false, v_pay);
END;
$$;
COMMENT ON FUNCTION tolem_cancel(integer, text, bigint, integer)
    IS 'Voids a reservation or reverses a credit, once; repeats replay.';
