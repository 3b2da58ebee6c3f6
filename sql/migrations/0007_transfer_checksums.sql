-- 0007: tamper evidence for the ledger.
--
-- Triggers already refuse UPDATE and DELETE on transfers, but a superuser can disable triggers.
-- Each transfer now carries a checksum of its own content, computed by the database when the
-- row is written; `tolem audit` recomputes it, so an edit made behind the triggers' back shows
-- up as a mismatch unless the editor also knew to forge the checksum.

ALTER TABLE transfers ADD COLUMN checksum text;
COMMENT ON COLUMN transfers.checksum IS 'md5 of the row''s content at insert; tolem audit recomputes it to detect edits.';

CREATE FUNCTION tolem_transfer_checksum(t transfers) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT md5(concat_ws('|', t.id, t.debit_ledger_account_id, t.credit_ledger_account_id,
                         t.amount_minor, t.currency, t.code, t.payment_id,
                         coalesce(t.reverses_transfer_id::text, '-'),
                         to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')));
$$;
COMMENT ON FUNCTION tolem_transfer_checksum(transfers) IS 'Content checksum of one transfer.';

CREATE FUNCTION tolem_stamp_transfer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.checksum := tolem_transfer_checksum(NEW);
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION tolem_stamp_transfer() IS 'Sets the checksum of a transfer being written.';

-- Rows written before this migration get their checksum now (the append-only trigger is
-- lifted for exactly this one statement, inside this migration's transaction).
ALTER TABLE transfers DISABLE TRIGGER tr__transfers__append_only;
UPDATE transfers t SET checksum = tolem_transfer_checksum(t);
ALTER TABLE transfers ENABLE TRIGGER tr__transfers__append_only;

ALTER TABLE transfers ALTER COLUMN checksum SET NOT NULL;
CREATE TRIGGER tr__transfers__checksum BEFORE INSERT ON transfers
    FOR EACH ROW EXECUTE FUNCTION tolem_stamp_transfer();
