-- The operator console: login throttling and the append-only record of operators' actions
-- (migration 0013 says why they live in the database).
--
-- Current definitions, applied by `tolem migrate` after the migrations whenever this file's
-- checksum differs from the recorded one (src/tolem/db/migrate.py has the rules).

CREATE OR REPLACE TRIGGER tr__operator_actions__append_only BEFORE UPDATE OR DELETE ON operator_actions
    FOR EACH ROW EXECUTE FUNCTION tolem_refuse_change();
CREATE OR REPLACE TRIGGER tr__operator_actions__no_truncate BEFORE TRUNCATE ON operator_actions
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();

-- One throttle row, locked: created at zero when the key is new.
CREATE OR REPLACE FUNCTION tolem_login_throttle_row(p_scope text, p_key text)
RETURNS operator_login_throttles LANGUAGE plpgsql AS $$
DECLARE
    v_row operator_login_throttles;
BEGIN
    INSERT INTO operator_login_throttles (scope, key, failures, last_attempt_at)
    VALUES (p_scope, p_key, 0, now())
    ON CONFLICT ON CONSTRAINT pk__operator_login_throttles DO NOTHING;
    SELECT * INTO STRICT v_row FROM operator_login_throttles
     WHERE scope = p_scope AND key = p_key FOR UPDATE;
    RETURN v_row;
END;
$$;
COMMENT ON FUNCTION tolem_login_throttle_row(text, text) IS 'The throttle row of one key, created if new, locked for the rest of the transaction.';

-- Counts one attempt on a row the caller holds locked.
CREATE OR REPLACE FUNCTION tolem_login_throttle_count(
    p_row operator_login_throttles, p_limit integer, p_quiet interval, p_base interval, p_cap interval
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_failures integer;
BEGIN
    v_failures := CASE WHEN p_row.last_attempt_at < now() - p_quiet THEN 1 ELSE p_row.failures + 1 END;
    UPDATE operator_login_throttles
       SET failures = v_failures,
           last_attempt_at = now(),
           -- From the limit on, each counted attempt locks the key, twice as long each time.
           locked_until = CASE WHEN v_failures >= p_limit
                               THEN now() + least(p_cap, p_base * power(2, least(v_failures - p_limit, 30)))
                          END
     WHERE scope = p_row.scope AND key = p_row.key;
END;
$$;
COMMENT ON FUNCTION tolem_login_throttle_count(operator_login_throttles, integer, interval, interval, interval) IS 'Counts one login attempt on a throttle row and sets its lockout.';

-- The attempt is counted before the password is checked and under the rows' locks, so a burst
-- of parallel guesses gets no more tries than a patient one.
CREATE OR REPLACE FUNCTION tolem_operator_login_attempt(
    p_name text, p_address text,
    p_name_limit integer, p_address_limit integer,
    p_quiet interval, p_base interval, p_cap interval
) RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    v_address operator_login_throttles;
    v_name operator_login_throttles;
BEGIN
    -- Always address before operator ('address' < 'operator'): one lock order, no deadlocks.
    v_address := tolem_login_throttle_row('address', p_address);
    v_name := tolem_login_throttle_row('operator', p_name);
    IF v_address.locked_until > now() OR v_name.locked_until > now() THEN
        RETURN greatest(v_address.locked_until, v_name.locked_until);
    END IF;
    PERFORM tolem_login_throttle_count(v_address, p_address_limit, p_quiet, p_base, p_cap);
    PERFORM tolem_login_throttle_count(v_name, p_name_limit, p_quiet, p_base, p_cap);
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION tolem_operator_login_attempt(text, text, integer, integer, interval, interval, interval) IS
    'Claims one login attempt for a name from an address: NULL when the password may be checked (the attempt is counted as failed until tolem_operator_login_succeeded says otherwise), else the time until which logins are refused.';

CREATE OR REPLACE FUNCTION tolem_operator_login_succeeded(p_name text, p_address text, p_address_limit integer)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- The address's count keeps earlier failures (someone guessing many names from there) and
    -- loses only this attempt; the operator's count starts again.
    UPDATE operator_login_throttles
       SET failures = greatest(failures - 1, 0),
           locked_until = CASE WHEN failures - 1 >= p_address_limit THEN locked_until END
     WHERE scope = 'address' AND key = p_address;
    DELETE FROM operator_login_throttles WHERE scope = 'operator' AND key = p_name;
END;
$$;
COMMENT ON FUNCTION tolem_operator_login_succeeded(text, text, integer) IS 'Takes back the attempt a correct password counted.';
