-- One currency per payment and per account for life (the rules of migration 0010).
--
-- Current definitions, applied by `tolem migrate` after the migrations whenever this file's
-- checksum differs from the recorded one (src/tolem/db/migrate.py has the rules).

CREATE OR REPLACE FUNCTION tolem_check_payment_currency() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE OR REPLACE TRIGGER tr__payments__currency
    BEFORE INSERT OR UPDATE OF account_id, provider_id, currency
    ON payments FOR EACH ROW EXECUTE FUNCTION tolem_check_payment_currency();

CREATE OR REPLACE FUNCTION tolem_keep_currency() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.currency <> OLD.currency THEN
        RAISE EXCEPTION 'ledger account % is held in % for life', OLD.id, OLD.currency
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION tolem_keep_currency() IS 'Keeps a ledger account in its currency forever.';
CREATE OR REPLACE TRIGGER tr__ledger_accounts__currency BEFORE UPDATE OF currency ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION tolem_keep_currency();

CREATE OR REPLACE FUNCTION tolem_keep_ledger_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ledger_account_id <> OLD.ledger_account_id THEN
        RAISE EXCEPTION 'account % keeps ledger account % for life', OLD.id, OLD.ledger_account_id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION tolem_keep_ledger_account() IS 'Keeps an account on its ledger account (and so its currency) forever.';
CREATE OR REPLACE TRIGGER tr__accounts__ledger_account BEFORE UPDATE OF ledger_account_id ON accounts
    FOR EACH ROW EXECUTE FUNCTION tolem_keep_ledger_account();
