-- The ledger: the one posting rule, and the guards that keep transfers and payment codes forever.
--
-- Current definitions, applied by `tolem migrate` after the migrations whenever this file's
-- checksum differs from the recorded one (src/tolem/db/migrate.py has the rules). Everything
-- here is CREATE OR REPLACE, so applying it again changes nothing.

CREATE OR REPLACE FUNCTION tolem_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: the table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$;
COMMENT ON FUNCTION tolem_refuse_change() IS 'Trigger body that makes a table append-only.';

CREATE OR REPLACE FUNCTION tolem_transfer_checksum(t transfers) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT md5(concat_ws('|', t.id, t.debit_ledger_account_id, t.credit_ledger_account_id,
                         t.amount_minor, t.currency, t.code, t.payment_id,
                         coalesce(t.reverses_transfer_id::text, '-'),
                         to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')));
$$;
COMMENT ON FUNCTION tolem_transfer_checksum(transfers) IS 'Content checksum of one transfer.';

CREATE OR REPLACE FUNCTION tolem_stamp_transfer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.checksum := tolem_transfer_checksum(NEW);
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION tolem_stamp_transfer() IS 'Sets the checksum of a transfer being written.';

CREATE OR REPLACE TRIGGER tr__transfers__append_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION tolem_refuse_change();
CREATE OR REPLACE TRIGGER tr__transfers__no_truncate BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();
CREATE OR REPLACE TRIGGER tr__transfers__checksum BEFORE INSERT ON transfers
    FOR EACH ROW EXECUTE FUNCTION tolem_stamp_transfer();

-- The one posting rule, used by every movement of money (a pay, a perform, a cancel, a credit
-- from a registry): a topup moves the amount from a provider's clearing account to a customer's,
-- a reversal moves it back, and the customer's stored balance moves with it. Clearing accounts
-- store no balance (0001), and the keys of 0015 hold the two legs to their kinds, so the
-- customer's row is the only one to update.
CREATE OR REPLACE FUNCTION tolem_post(
    p_payment_id bigint, p_code text, p_customer bigint, p_clearing bigint,
    p_amount bigint, p_currency char(3), p_reverses bigint DEFAULT NULL
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_topup boolean := p_code = 'topup';
    v_id    bigint;
BEGIN
    INSERT INTO transfers (debit_ledger_account_id, credit_ledger_account_id, amount_minor,
                           currency, code, payment_id, reverses_transfer_id)
    VALUES (CASE WHEN v_topup THEN p_clearing ELSE p_customer END,
            CASE WHEN v_topup THEN p_customer ELSE p_clearing END,
            p_amount, p_currency, p_code, p_payment_id, p_reverses)
    RETURNING id INTO v_id;
    UPDATE ledger_accounts
       SET balance_minor = balance_minor + CASE WHEN v_topup THEN p_amount ELSE -p_amount END
     WHERE id = p_customer;
    RETURN v_id;
END;
$$;
COMMENT ON FUNCTION tolem_post(bigint, text, bigint, bigint, bigint, char, bigint)
    IS 'Writes one transfer between a customer and a clearing account and moves the customer''s stored balance with it.';

-- A payment code is never reused, so a payer is never deleted and its code never edited.
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
CREATE OR REPLACE TRIGGER tr__payers__protect BEFORE UPDATE OR DELETE ON payers
    FOR EACH ROW EXECUTE FUNCTION tolem_protect_payer();
CREATE OR REPLACE TRIGGER tr__payers__no_truncate BEFORE TRUNCATE ON payers
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();
