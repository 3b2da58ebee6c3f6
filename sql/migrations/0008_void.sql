-- 0008: void a reservation without ever touching a credit.
--
-- Some protocols report "the payer was not charged" for a payment that a concurrent request may
-- just have confirmed (Click's Complete with error < 0 racing a Complete with error = 0). Cancel
-- would reverse such a credit; void only ever ends a reservation, under the payment's row lock,
-- and reports a credit as the wrong state for the caller to answer accordingly.

CREATE FUNCTION tolem_void(
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
