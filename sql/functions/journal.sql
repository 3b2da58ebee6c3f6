-- The request journal stays append-only; rows leave only through `tolem journal archive`, whose
-- transaction says so with SET LOCAL tolem.journal_archive = 'on' (migration 0006).
--
-- Current definitions, applied by `tolem migrate` after the migrations whenever this file's
-- checksum differs from the recorded one (src/tolem/db/migrate.py has the rules).

CREATE OR REPLACE FUNCTION tolem_journal_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('tolem.journal_archive', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% on request_journal is not allowed: rows leave only through tolem journal archive', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
COMMENT ON FUNCTION tolem_journal_guard() IS 'Keeps the journal append-only; the archive command alone may delete.';
CREATE OR REPLACE TRIGGER tr__request_journal__append_only BEFORE UPDATE OR DELETE ON request_journal
    FOR EACH ROW EXECUTE FUNCTION tolem_journal_guard();
CREATE OR REPLACE TRIGGER tr__request_journal__no_truncate BEFORE TRUNCATE ON request_journal
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();
