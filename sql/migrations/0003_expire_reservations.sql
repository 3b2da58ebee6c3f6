-- 0003: voiding stale reservations in bounded batches (the two-phase time limit, e.g. Payme's 12 h).
--
-- Why: a reservation that is never performed or cancelled must not stay "reserved" for ever.
-- tolem_perform and a repeated tolem_accept already void a stale reservation they touch; this
-- sweeps the ones nobody touches any more, so that status and statements show them voided.
--
-- Why this shape: several processes (workers, hosts, a cron job overlapping a slow run) may sweep
-- at once. Each call takes at most p_limit rows with FOR UPDATE SKIP LOCKED, so two sweeps split
-- the stale rows between them instead of queueing, and a row being performed or cancelled right
-- now (locked by tolem_lock_payment) is left alone and judged by that operation instead. A row
-- committed as credited or voided by someone else after our snapshot is re-checked against
-- `state = 'reserved'` when locked and dropped. Each row is therefore voided exactly once.

CREATE INDEX ix__payments__provider_id__reserved_since
    ON payments (provider_id, (coalesce(provider_time, created_at)))
    WHERE state = 'reserved';
COMMENT ON INDEX ix__payments__provider_id__reserved_since
    IS 'Finds a provider''s oldest open reservations for tolem_expire_reservations.';

CREATE FUNCTION tolem_expire_reservations(
    p_provider_id integer, p_before timestamptz, p_reason integer, p_limit integer
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    IF p_before IS NULL OR p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'tolem_expire_reservations needs a time and a positive limit'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WITH stale AS (
        SELECT id
          FROM payments
         WHERE provider_id = p_provider_id
           AND state = 'reserved'
           AND coalesce(provider_time, created_at) < p_before
         ORDER BY coalesce(provider_time, created_at), id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    )
    -- Same change as tolem_expire (0002), so a swept row looks like one expired on perform.
    UPDATE payments p
       SET state = 'voided', cancelled_at = now(), cancel_reason = p_reason
      FROM stale
     WHERE p.id = stale.id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;
COMMENT ON FUNCTION tolem_expire_reservations(integer, timestamptz, integer, integer)
    IS 'Voids up to p_limit reservations of a provider stamped before p_before; returns how many.';
