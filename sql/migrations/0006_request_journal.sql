-- 0006: the request journal: what each aggregator asked and what we answered.
--
-- Aggregators dispute payments days later ("did you receive txn 123, what did you say?"), so
-- every gateway call to a known provider, accepted or refused, leaves one row here. The table
-- stands apart from the money: nothing references it and it references nothing, so old rows
-- can be archived by date (tolem journal archive) without touching payments or the ledger.
-- Rows are never edited; deleting is allowed only inside the archive command's transaction,
-- which says so with SET LOCAL tolem.journal_archive = 'on'.
-- Payment codes are stored masked and answer bodies with codes masked; secrets, signatures
-- and passwords are never stored.

CREATE TABLE request_journal (
    id            bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__request_journal PRIMARY KEY,
    received_at   timestamptz NOT NULL,
    provider      text        NOT NULL,
    remote_addr   inet,
    method        text        NOT NULL,
    command       text        NOT NULL,
    txn           text,
    code_masked   text,
    result        text,
    http_status   smallint    NOT NULL,
    response_body text,
    duration_us   bigint      NOT NULL,
    request_id    text,
    details       jsonb       NOT NULL DEFAULT '{}',
    CONSTRAINT ck__request_journal__provider CHECK (char_length(provider) BETWEEN 1 AND 32),
    CONSTRAINT ck__request_journal__method CHECK (char_length(method) BETWEEN 1 AND 16),
    CONSTRAINT ck__request_journal__command CHECK (char_length(command) BETWEEN 1 AND 64),
    CONSTRAINT ck__request_journal__txn CHECK (char_length(txn) <= 64),
    CONSTRAINT ck__request_journal__code_masked CHECK (code_masked !~ '[0-9A-Za-z]{5}'),
    CONSTRAINT ck__request_journal__result CHECK (char_length(result) <= 32),
    CONSTRAINT ck__request_journal__response_body CHECK (char_length(response_body) <= 16384),
    CONSTRAINT ck__request_journal__duration CHECK (duration_us >= 0),
    CONSTRAINT ck__request_journal__request_id CHECK (char_length(request_id) <= 64)
);
CREATE INDEX ix__request_journal__received_at ON request_journal (received_at);
CREATE INDEX ix__request_journal__provider__txn ON request_journal (provider, txn);
CREATE INDEX ix__request_journal__code_masked__received_at
    ON request_journal (code_masked, received_at) WHERE code_masked IS NOT NULL;
COMMENT ON TABLE request_journal IS 'Every gateway call to a known provider and our answer; append-only, archived by date.';
COMMENT ON COLUMN request_journal.received_at IS 'When the call arrived (UTC).';
COMMENT ON COLUMN request_journal.provider IS 'Provider name at the time of the call (no foreign key: archiving must not depend on providers).';
COMMENT ON COLUMN request_journal.remote_addr IS 'Caller address as the allow-list saw it (X-Forwarded-For only from trusted proxies).';
COMMENT ON COLUMN request_journal.method IS 'HTTP method.';
COMMENT ON COLUMN request_journal.command IS 'Protocol command as the adapter named it (check, pay, CreateTransaction, prepare…), or unknown/refused.';
COMMENT ON COLUMN request_journal.txn IS 'The provider''s transaction id, when the request carried one we could read.';
COMMENT ON COLUMN request_journal.code_masked IS 'Payment code with all but its last four characters masked.';
COMMENT ON COLUMN request_journal.result IS 'Protocol result code we answered (OSMP result, Click error, Payme error code or ok).';
COMMENT ON COLUMN request_journal.http_status IS 'HTTP status of our answer.';
COMMENT ON COLUMN request_journal.response_body IS 'Our answer''s body with payment codes masked, cut at 16 KiB.';
COMMENT ON COLUMN request_journal.duration_us IS 'Time from reading the request to having the answer, microseconds.';
COMMENT ON COLUMN request_journal.request_id IS 'X-Request-Id of the call, as in the canonical log line.';
COMMENT ON COLUMN request_journal.details IS 'Other non-secret facts the adapter noted (amount, refusal, replayed, payment id, error).';

CREATE FUNCTION tolem_journal_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('tolem.journal_archive', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% on request_journal is not allowed: rows leave only through tolem journal archive', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
COMMENT ON FUNCTION tolem_journal_guard() IS 'Keeps the journal append-only; the archive command alone may delete.';
CREATE TRIGGER tr__request_journal__append_only BEFORE UPDATE OR DELETE ON request_journal
    FOR EACH ROW EXECUTE FUNCTION tolem_journal_guard();
CREATE TRIGGER tr__request_journal__no_truncate BEFORE TRUNCATE ON request_journal
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();
