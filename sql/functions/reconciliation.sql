-- Registries are evidence, stored as received and never edited; a discrepancy changes once, from
-- open to resolved (migration 0012).
--
-- Current definitions, applied by `tolem migrate` after the migrations whenever this file's
-- checksum differs from the recorded one (src/tolem/db/migrate.py has the rules).

CREATE OR REPLACE TRIGGER tr__registries__append_only BEFORE UPDATE OR DELETE ON registries
    FOR EACH ROW EXECUTE FUNCTION tolem_refuse_change();
CREATE OR REPLACE TRIGGER tr__registries__no_truncate BEFORE TRUNCATE ON registries
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();
CREATE OR REPLACE TRIGGER tr__registry_lines__append_only BEFORE UPDATE OR DELETE ON registry_lines
    FOR EACH ROW EXECUTE FUNCTION tolem_refuse_change();
CREATE OR REPLACE TRIGGER tr__registry_lines__no_truncate BEFORE TRUNCATE ON registry_lines
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();

-- Only the resolution columns change, and a resolution that names a credit must name the
-- payment of that very provider and transaction.
CREATE OR REPLACE FUNCTION tolem_guard_discrepancy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'discrepancies are kept: resolve one instead of deleting it'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.resolved_at IS NOT NULL THEN
        RAISE EXCEPTION 'discrepancy % is already resolved', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.resolved_at IS NULL
       OR (to_jsonb(NEW) - ARRAY['resolved_at', 'resolved_by', 'resolution_note', 'credited_payment_id'])
          IS DISTINCT FROM
          (to_jsonb(OLD) - ARRAY['resolved_at', 'resolved_by', 'resolution_note', 'credited_payment_id']) THEN
        RAISE EXCEPTION 'a discrepancy may only be resolved, nothing else of it changed'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.credited_payment_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM payments
         WHERE id = NEW.credited_payment_id AND provider_id = NEW.provider_id AND external_id = NEW.txn
    ) THEN
        RAISE EXCEPTION 'payment % is not provider %''s transaction %', NEW.credited_payment_id,
            NEW.provider_id, NEW.txn
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION tolem_guard_discrepancy() IS 'Lets a discrepancy be resolved once and changed in no other way.';
CREATE OR REPLACE TRIGGER tr__discrepancies__guard BEFORE UPDATE OR DELETE ON discrepancies
    FOR EACH ROW EXECUTE FUNCTION tolem_guard_discrepancy();
CREATE OR REPLACE TRIGGER tr__discrepancies__no_truncate BEFORE TRUNCATE ON discrepancies
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();
