-- 0012: aggregators' daily registries, and the discrepancies found by diffing them.
--
-- Why: an aggregator settles each day against its registry (реестр) of the payments it believes
-- it made; some even count a payment as done after a timeout whatever we answered. Each
-- registry file is stored as it was received (append-only, one row per line) so a diff can be
-- repeated and argued about later, and each difference found becomes a discrepancy that stays
-- open until an operator resolves it with a note. Nothing here moves money: a missing payment
-- is credited only through tolem_accept (unique per provider and transaction id), and the
-- resolution merely points at the payment that did it.
--
-- Why these keys:
--  * One registry per (provider, business day, content): importing the same file again finds
--    the stored one and stores nothing. A different file for a day that has one is a new
--    revision, stored only when the operator asks for it (the command refuses otherwise).
--  * One discrepancy per (provider, business day, kind, transaction id): diffing again, or
--    diffing a later revision of the same day, never records a difference twice, and a
--    resolved difference stays resolved.

CREATE TABLE registries (
    id             bigint      GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__registries PRIMARY KEY,
    provider_id    integer     NOT NULL,
    business_day   date        NOT NULL,
    revision       integer     NOT NULL,
    format         text        NOT NULL,
    file_name      text        NOT NULL,
    sha256         text        NOT NULL,
    zone           text        NOT NULL,
    currency       char(3)     NOT NULL,
    line_count     integer     NOT NULL,
    declared_count integer,
    declared_minor bigint,
    imported_by    text        NOT NULL,
    imported_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__registries__provider_id__business_day__revision UNIQUE (provider_id, business_day, revision),
    CONSTRAINT uq__registries__provider_id__business_day__sha256 UNIQUE (provider_id, business_day, sha256),
    CONSTRAINT fk__registries__provider_id__providers FOREIGN KEY (provider_id)
        REFERENCES providers (id) ON DELETE RESTRICT,
    CONSTRAINT ck__registries__revision CHECK (revision >= 1),
    CONSTRAINT ck__registries__format CHECK (format IN ('qiwi', 'csv', 'payme')),
    CONSTRAINT ck__registries__file_name CHECK (char_length(file_name) BETWEEN 1 AND 255),
    CONSTRAINT ck__registries__sha256 CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT ck__registries__zone CHECK (char_length(zone) BETWEEN 1 AND 64),
    CONSTRAINT ck__registries__currency CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck__registries__line_count CHECK (line_count >= 0),
    CONSTRAINT ck__registries__declared CHECK (
        (declared_count IS NULL) = (declared_minor IS NULL)
        AND declared_count >= 0 AND declared_minor >= 0
    ),
    CONSTRAINT ck__registries__imported_by CHECK (char_length(imported_by) BETWEEN 1 AND 64)
);
COMMENT ON TABLE registries IS 'One registry file of an aggregator for one business day, as imported by tolem reconcile.';
COMMENT ON COLUMN registries.provider_id IS 'Aggregator whose registry this is.';
COMMENT ON COLUMN registries.business_day IS 'The day the registry covers, midnight to midnight in `zone`.';
COMMENT ON COLUMN registries.revision IS 'Counts the different files stored for the same provider and day; the highest one is diffed.';
COMMENT ON COLUMN registries.format IS 'qiwi: tab-separated QIWI/OSMP registry with a Total line; csv: generic CSV with a column mapping; payme: GetStatement JSON.';
COMMENT ON COLUMN registries.file_name IS 'Base name of the imported file.';
COMMENT ON COLUMN registries.sha256 IS 'Checksum of the file''s bytes: the same file imported again is recognised by it.';
COMMENT ON COLUMN registries.zone IS 'IANA zone in which the registry''s local times were read and its day bounded.';
COMMENT ON COLUMN registries.currency IS 'Currency of every amount in the registry (the provider''s).';
COMMENT ON COLUMN registries.line_count IS 'Payments listed (lines stored in registry_lines).';
COMMENT ON COLUMN registries.declared_count IS 'Count of the file''s trailer (Total line), NULL when the format has none; it matched the lines.';
COMMENT ON COLUMN registries.declared_minor IS 'Sum of the file''s trailer in minor units, NULL when the format has none; it matched the lines.';
COMMENT ON COLUMN registries.imported_by IS 'Operator who imported the file.';
COMMENT ON COLUMN registries.imported_at IS 'When the file was imported.';

CREATE TABLE registry_lines (
    registry_id  bigint      NOT NULL,
    line_no      integer     NOT NULL,
    txn          text        NOT NULL,
    txn_raw      text        NOT NULL,
    paid_at      timestamptz NOT NULL,
    paid_at_raw  text        NOT NULL,
    payment_code text,
    amount_minor bigint      NOT NULL,
    state        text        NOT NULL,
    CONSTRAINT pk__registry_lines PRIMARY KEY (registry_id, line_no),
    CONSTRAINT uq__registry_lines__registry_id__txn UNIQUE (registry_id, txn),
    CONSTRAINT fk__registry_lines__registry_id__registries FOREIGN KEY (registry_id)
        REFERENCES registries (id) ON DELETE RESTRICT,
    CONSTRAINT ck__registry_lines__line_no CHECK (line_no >= 1),
    CONSTRAINT ck__registry_lines__txn CHECK (char_length(txn) BETWEEN 1 AND 64),
    CONSTRAINT ck__registry_lines__txn_raw CHECK (char_length(txn_raw) BETWEEN 1 AND 64),
    CONSTRAINT ck__registry_lines__paid_at_raw CHECK (char_length(paid_at_raw) BETWEEN 1 AND 64),
    CONSTRAINT ck__registry_lines__payment_code CHECK (char_length(payment_code) BETWEEN 1 AND 200),
    CONSTRAINT ck__registry_lines__amount CHECK (amount_minor > 0),
    CONSTRAINT ck__registry_lines__state CHECK (state IN ('paid', 'cancelled', 'pending'))
);
COMMENT ON TABLE registry_lines IS 'The payments a registry lists, one row per line of the file.';
COMMENT ON COLUMN registry_lines.registry_id IS 'Registry the line belongs to.';
COMMENT ON COLUMN registry_lines.line_no IS 'Line (CSV: record) number in the file, for people to find it.';
COMMENT ON COLUMN registry_lines.txn IS 'The aggregator''s transaction id as our payments store it (external_id: OSMP and Click ids by their number).';
COMMENT ON COLUMN registry_lines.txn_raw IS 'The transaction id exactly as the file wrote it.';
COMMENT ON COLUMN registry_lines.paid_at IS 'The aggregator''s time of the payment, in UTC.';
COMMENT ON COLUMN registry_lines.paid_at_raw IS 'That time exactly as the file wrote it (a credit from the line stores it as the payment''s provider_time_raw).';
COMMENT ON COLUMN registry_lines.payment_code IS 'Payment code (account) the aggregator paid; NULL when the format or mapping has none.';
COMMENT ON COLUMN registry_lines.amount_minor IS 'Amount in minor units of the registry''s currency.';
COMMENT ON COLUMN registry_lines.state IS 'paid; cancelled (the aggregator cancelled or refunded it); pending (created, not yet performed: Payme state 1).';

CREATE TABLE discrepancies (
    id                  bigint      GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__discrepancies PRIMARY KEY,
    provider_id         integer     NOT NULL,
    business_day        date        NOT NULL,
    kind                text        NOT NULL,
    txn                 text        NOT NULL,
    registry_id         bigint      NOT NULL,
    line_no             integer,
    payment_id          bigint,
    theirs_amount_minor bigint,
    ours_amount_minor   bigint,
    theirs_code         text,
    ours_code           text,
    theirs_state        text,
    ours_state          text,
    ours_day            date,
    found_at            timestamptz NOT NULL DEFAULT now(),
    resolved_at         timestamptz,
    resolved_by         text,
    resolution_note     text,
    credited_payment_id bigint,
    CONSTRAINT uq__discrepancies__provider_id__business_day__kind__txn UNIQUE (provider_id, business_day, kind, txn),
    CONSTRAINT fk__discrepancies__provider_id__providers FOREIGN KEY (provider_id)
        REFERENCES providers (id) ON DELETE RESTRICT,
    CONSTRAINT fk__discrepancies__registry_id__registries FOREIGN KEY (registry_id)
        REFERENCES registries (id) ON DELETE RESTRICT,
    CONSTRAINT fk__discrepancies__registry_id__line_no__registry_lines FOREIGN KEY (registry_id, line_no)
        REFERENCES registry_lines (registry_id, line_no) ON DELETE RESTRICT,
    CONSTRAINT fk__discrepancies__payment_id__payments FOREIGN KEY (payment_id)
        REFERENCES payments (id) ON DELETE RESTRICT,
    CONSTRAINT fk__discrepancies__credited_payment_id__payments FOREIGN KEY (credited_payment_id)
        REFERENCES payments (id) ON DELETE RESTRICT,
    CONSTRAINT ck__discrepancies__kind CHECK (kind IN (
        'missing_ours', 'missing_theirs', 'amount_mismatch', 'code_mismatch', 'state_mismatch', 'day_mismatch'
    )),
    CONSTRAINT ck__discrepancies__txn CHECK (char_length(txn) BETWEEN 1 AND 64),
    -- What each kind compares: a line without a payment, a payment without a line, or both.
    CONSTRAINT ck__discrepancies__sides CHECK (
        CASE kind
            WHEN 'missing_ours' THEN line_no IS NOT NULL AND payment_id IS NULL
            WHEN 'missing_theirs' THEN line_no IS NULL AND payment_id IS NOT NULL
            ELSE line_no IS NOT NULL AND payment_id IS NOT NULL
        END
    ),
    CONSTRAINT ck__discrepancies__resolution CHECK (
        (resolved_at IS NULL AND resolved_by IS NULL AND resolution_note IS NULL AND credited_payment_id IS NULL)
        OR (resolved_at IS NOT NULL AND resolved_by IS NOT NULL AND resolution_note IS NOT NULL)
    ),
    CONSTRAINT ck__discrepancies__resolved_by CHECK (char_length(resolved_by) BETWEEN 1 AND 64),
    CONSTRAINT ck__discrepancies__resolution_note CHECK (char_length(resolution_note) BETWEEN 1 AND 1000),
    CONSTRAINT ck__discrepancies__credit CHECK (credited_payment_id IS NULL OR kind = 'missing_ours')
);
CREATE INDEX ix__discrepancies__provider_id__open ON discrepancies (provider_id) WHERE resolved_at IS NULL;
COMMENT ON INDEX ix__discrepancies__provider_id__open IS 'Open discrepancies per provider: what operators work off and /metrics counts.';
COMMENT ON TABLE discrepancies IS 'A difference between an aggregator''s registry and our payments; open until an operator resolves it with a note.';
COMMENT ON COLUMN discrepancies.provider_id IS 'Aggregator concerned.';
COMMENT ON COLUMN discrepancies.business_day IS 'Business day of the registry that showed the difference.';
COMMENT ON COLUMN discrepancies.kind IS 'missing_ours: in their registry, not in our payments; missing_theirs: credited here, not in their registry (nor a neighbouring day''s); amount_mismatch, code_mismatch: same transaction id, other amount or payment code; state_mismatch: paid on one side, cancelled or not performed on the other; day_mismatch: our payment falls on another business day than the registry''s.';
COMMENT ON COLUMN discrepancies.txn IS 'The aggregator''s transaction id (as payments.external_id stores it).';
COMMENT ON COLUMN discrepancies.registry_id IS 'Registry whose diff first showed the difference.';
COMMENT ON COLUMN discrepancies.line_no IS 'Its line in that registry; NULL for missing_theirs.';
COMMENT ON COLUMN discrepancies.payment_id IS 'Our payment with that transaction id; NULL for missing_ours.';
COMMENT ON COLUMN discrepancies.theirs_amount_minor IS 'The registry''s amount when found, minor units.';
COMMENT ON COLUMN discrepancies.ours_amount_minor IS 'Our payment''s amount when found, minor units.';
COMMENT ON COLUMN discrepancies.theirs_code IS 'The registry''s payment code when found.';
COMMENT ON COLUMN discrepancies.ours_code IS 'Our payment''s payment code when found.';
COMMENT ON COLUMN discrepancies.theirs_state IS 'The registry''s state of the payment when found (paid, cancelled, pending).';
COMMENT ON COLUMN discrepancies.ours_state IS 'Our payment''s state when found.';
COMMENT ON COLUMN discrepancies.ours_day IS 'Business day of our payment in the registry''s zone, when found.';
COMMENT ON COLUMN discrepancies.found_at IS 'When the diff first recorded the difference.';
COMMENT ON COLUMN discrepancies.resolved_at IS 'When an operator resolved it; NULL while open.';
COMMENT ON COLUMN discrepancies.resolved_by IS 'Operator who resolved it (OS user, --operator, or the console''s logged-in operator).';
COMMENT ON COLUMN discrepancies.resolution_note IS 'What the operator found or did.';
COMMENT ON COLUMN discrepancies.credited_payment_id IS 'For missing_ours credited from the registry: the payment tolem_accept created (or replayed) for that transaction id.';

-- Registries are evidence: stored as received, never edited.
CREATE TRIGGER tr__registries__append_only BEFORE UPDATE OR DELETE ON registries
    FOR EACH ROW EXECUTE FUNCTION tolem_refuse_change();
CREATE TRIGGER tr__registries__no_truncate BEFORE TRUNCATE ON registries
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();
CREATE TRIGGER tr__registry_lines__append_only BEFORE UPDATE OR DELETE ON registry_lines
    FOR EACH ROW EXECUTE FUNCTION tolem_refuse_change();
CREATE TRIGGER tr__registry_lines__no_truncate BEFORE TRUNCATE ON registry_lines
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();

-- A discrepancy changes once, from open to resolved, and only in its resolution columns; a
-- resolution that names a credit must name the payment of that very provider and transaction.
CREATE FUNCTION tolem_guard_discrepancy() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER tr__discrepancies__guard BEFORE UPDATE OR DELETE ON discrepancies
    FOR EACH ROW EXECUTE FUNCTION tolem_guard_discrepancy();
CREATE TRIGGER tr__discrepancies__no_truncate BEFORE TRUNCATE ON discrepancies
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();
