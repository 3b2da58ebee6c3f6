-- 0010: money of one currency never reaches an account of another.
--
-- Why: every row already carried a currency, but nothing compared them. A deployment started
-- with another TOLEM_CURRENCY on an existing database registered its providers in the new
-- currency and credited their payments 1:1 into the accounts of the old one, and the audit,
-- summing the whole ledger at once, found it balanced. tolem never converts, so the database
-- now refuses the mix itself:
--  * a transfer's currency is the currency of both ledger accounts it touches (a foreign key
--    on (account, currency) for each leg, so no code path can write it otherwise);
--  * a provider's currency is its clearing account's (the same kind of key);
--  * a payment's currency is its account's and its provider's (a trigger: the account's
--    currency lives on its ledger account, one join away);
--  * the links those checks rely on do not change afterwards: a ledger account keeps its
--    currency and an account its ledger account;
--  * tolem_accept answers 'currency_refused' (a final refusal the protocols can word) instead
--    of crediting, when the provider's currency is not the account's or not the one the
--    calling deployment states (p_currency, new and optional); as for every refusal, a
--    repeat of an already accepted payment still replays the first answer.
--
-- A database that already holds mixed rows must still be able to take this migration (its
-- ledger is append-only: the rows cannot be removed, only reported). The keys are therefore
-- created NOT VALID, which enforces them for every new or changed row, and then validated
-- where the existing rows allow it; where they do not, the key stays NOT VALID (with a
-- warning) and `tolem audit` lists the offending rows.

ALTER TABLE ledger_accounts
    ADD CONSTRAINT uq__ledger_accounts__currency__id UNIQUE (currency, id);
COMMENT ON CONSTRAINT uq__ledger_accounts__currency__id ON ledger_accounts
    IS 'Target of the (account, currency) keys of transfers and providers; also finds the currencies in use.';

ALTER TABLE transfers
    ADD CONSTRAINT fk__transfers__debit__currency__ledger_accounts
        FOREIGN KEY (debit_ledger_account_id, currency) REFERENCES ledger_accounts (id, currency)
        ON DELETE RESTRICT NOT VALID,
    ADD CONSTRAINT fk__transfers__credit__currency__ledger_accounts
        FOREIGN KEY (credit_ledger_account_id, currency) REFERENCES ledger_accounts (id, currency)
        ON DELETE RESTRICT NOT VALID;
COMMENT ON CONSTRAINT fk__transfers__debit__currency__ledger_accounts ON transfers
    IS 'The account debited holds the transfer''s currency.';
COMMENT ON CONSTRAINT fk__transfers__credit__currency__ledger_accounts ON transfers
    IS 'The account credited holds the transfer''s currency.';

ALTER TABLE providers
    ADD CONSTRAINT fk__providers__clearing__currency__ledger_accounts
        FOREIGN KEY (clearing_ledger_account_id, currency) REFERENCES ledger_accounts (id, currency)
        ON DELETE RESTRICT NOT VALID;
COMMENT ON CONSTRAINT fk__providers__clearing__currency__ledger_accounts ON providers
    IS 'A provider''s clearing account holds the provider''s currency.';

DO $$
DECLARE
    v_key text[];
BEGIN
    FOREACH v_key SLICE 1 IN ARRAY ARRAY[
        ['transfers', 'fk__transfers__debit__currency__ledger_accounts'],
        ['transfers', 'fk__transfers__credit__currency__ledger_accounts'],
        ['providers', 'fk__providers__clearing__currency__ledger_accounts']
    ] LOOP
        BEGIN
            EXECUTE format('ALTER TABLE %I VALIDATE CONSTRAINT %I', v_key[1], v_key[2]);
        EXCEPTION WHEN foreign_key_violation THEN
            RAISE WARNING '% holds rows of mixed currencies: % stays NOT VALID (enforced for new rows); run tolem audit',
                v_key[1], v_key[2];
        END;
    END LOOP;
END;
$$;

CREATE FUNCTION tolem_check_payment_currency() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_account  char(3);
    v_provider char(3);
BEGIN
    SELECT l.currency, pr.currency INTO v_account, v_provider
      FROM accounts a
      JOIN ledger_accounts l ON l.id = a.ledger_account_id
      JOIN providers pr ON pr.id = NEW.provider_id
     WHERE a.id = NEW.account_id;
    -- A missing account or provider is the foreign keys' to report.
    IF v_account <> NEW.currency OR v_provider <> NEW.currency THEN
        RAISE EXCEPTION 'payment in % refused: account % holds %, provider % takes %; tolem never converts',
            NEW.currency, NEW.account_id, v_account, NEW.provider_id, v_provider
            USING ERRCODE = 'check_violation', TABLE = 'payments',
                  CONSTRAINT = 'tr__payments__currency';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION tolem_check_payment_currency()
    IS 'Refuses a payment whose currency is not its account''s and its provider''s.';
CREATE TRIGGER tr__payments__currency BEFORE INSERT OR UPDATE OF account_id, provider_id, currency
    ON payments FOR EACH ROW EXECUTE FUNCTION tolem_check_payment_currency();

CREATE FUNCTION tolem_keep_currency() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.currency <> OLD.currency THEN
        RAISE EXCEPTION 'ledger account % is held in % for life', OLD.id, OLD.currency
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION tolem_keep_currency() IS 'Keeps a ledger account in its currency forever.';
CREATE TRIGGER tr__ledger_accounts__currency BEFORE UPDATE OF currency ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION tolem_keep_currency();

CREATE FUNCTION tolem_keep_ledger_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ledger_account_id <> OLD.ledger_account_id THEN
        RAISE EXCEPTION 'account % keeps ledger account % for life', OLD.id, OLD.ledger_account_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION tolem_keep_ledger_account() IS 'Keeps an account on its ledger account (and so its currency) forever.';
CREATE TRIGGER tr__accounts__ledger_account BEFORE UPDATE OF ledger_account_id ON accounts
    FOR EACH ROW EXECUTE FUNCTION tolem_keep_ledger_account();

-- The 0009 function with the currency refusals. It is dropped and created again because its
-- argument list grows; callers passing the old nine arguments get this one (p_currency NULL:
-- only the provider and the account are compared).
DROP FUNCTION tolem_accept(integer, text, text, bigint, timestamptz, text, boolean, timestamptz, integer);

CREATE FUNCTION tolem_accept(
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
    -- Refusals are decided now but answered only after looking for a replay (below).
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
                -- tolem_post_transfer's writes, inline: a nested call cost more than they do.
                INSERT INTO transfers (debit_ledger_account_id, credit_ledger_account_id,
                                       amount_minor, currency, code, payment_id)
                VALUES (v_provider.clearing_ledger_account_id, v_payer.ledger_account_id,
                        p_amount, v_provider.currency, 'topup', v_pay.id);
                UPDATE ledger_accounts SET balance_minor = balance_minor + p_amount
                 WHERE id = v_payer.ledger_account_id AND kind = 'customer';
                UPDATE ledger_accounts SET balance_minor = balance_minor - p_amount
                 WHERE id = v_provider.clearing_ledger_account_id AND kind = 'customer';
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
