-- 0013: the operator console: operators (people, not tokens), their sessions, login throttling,
-- and the append-only record of what each operator did.
--
-- Why this shape:
--  * Support and accounting are people with their own logins, so every change to an account
--    can be traced to one of them. An operator is never deleted (the actions reference it);
--    one who leaves is disabled, which ends their sessions.
--  * Sessions live here, not in a signed cookie: the cookie carries a random token and the table
--    only its SHA-256, so logout, disabling an operator or changing a password ends a session at
--    once in every worker, there is no signing key to keep or rotate, and a copy of this table
--    lets no one in. The token has 256 random bits, so a fast hash is enough (no KDF needed).
--  * Failed logins are counted here, per operator name and per caller address, so that every
--    worker agrees on a lockout. tolem_operator_login_attempt counts an attempt before the
--    password is checked and under the rows' locks, so a burst of parallel guesses gets no more
--    tries than a patient one.
--  * operator_actions is append-only like the ledger: a record that its subject could edit would
--    prove nothing. An operator's change and its record commit in one transaction.
--  * The console's "today per provider" sums the day's transfers. transfers is append-only, so
--    its rows lie on disk in created_at order, and a BRIN index (a few pages for millions of
--    rows, next to nothing per insert) finds the day's part of the table without reading the
--    rest of the history.

CREATE TABLE operators (
    id                  integer GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__operators PRIMARY KEY,
    name                text        NOT NULL,
    role                text        NOT NULL,
    password_hash       text        NOT NULL,
    enabled             boolean     NOT NULL DEFAULT true,
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__operators__name UNIQUE (name),
    -- Lower case only, so the unique key is case-blind and a login can be typed in any case.
    CONSTRAINT ck__operators__name CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,31}$'),
    CONSTRAINT ck__operators__role CHECK (role IN ('support', 'admin')),
    CONSTRAINT ck__operators__password_hash CHECK (
        char_length(password_hash) <= 256 AND password_hash LIKE 'scrypt$%'
    )
);
COMMENT ON TABLE operators IS 'People who log in to the operator console (/ops/); never deleted, disabled instead.';
COMMENT ON COLUMN operators.name IS 'Login name, lower case; shown in the record of actions.';
COMMENT ON COLUMN operators.role IS 'support: may look things up; admin: may also block and unblock accounts and add payers.';
COMMENT ON COLUMN operators.password_hash IS 'Salted scrypt hash of the password (memory-hard); never the password.';
COMMENT ON COLUMN operators.enabled IS 'A disabled operator cannot log in, and their sessions stop working.';
COMMENT ON COLUMN operators.password_changed_at IS 'When the password was last set.';
COMMENT ON COLUMN operators.updated_at IS 'Last change of role, password or enabled.';

CREATE TABLE operator_sessions (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__operator_sessions PRIMARY KEY,
    operator_id  integer     NOT NULL,
    token_hash   bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    remote_addr  inet,
    user_agent   text,
    CONSTRAINT uq__operator_sessions__token_hash UNIQUE (token_hash),
    CONSTRAINT fk__operator_sessions__operator_id__operators FOREIGN KEY (operator_id)
        REFERENCES operators (id) ON DELETE RESTRICT,
    CONSTRAINT ck__operator_sessions__token_hash CHECK (octet_length(token_hash) = 32),
    CONSTRAINT ck__operator_sessions__expiry CHECK (expires_at > created_at),
    CONSTRAINT ck__operator_sessions__revoked CHECK (revoked_at >= created_at),
    CONSTRAINT ck__operator_sessions__user_agent CHECK (char_length(user_agent) <= 256)
);
CREATE INDEX ix__operator_sessions__operator_id ON operator_sessions (operator_id);
CREATE INDEX ix__operator_sessions__expires_at ON operator_sessions (expires_at);
COMMENT ON TABLE operator_sessions IS 'Console logins; the cookie holds a random token, this table its SHA-256.';
COMMENT ON COLUMN operator_sessions.operator_id IS 'Who logged in.';
COMMENT ON COLUMN operator_sessions.token_hash IS 'SHA-256 of the session cookie''s token; the token itself is never stored.';
COMMENT ON COLUMN operator_sessions.last_seen_at IS 'Last request of the session; idle past the console''s limit, it ends.';
COMMENT ON COLUMN operator_sessions.expires_at IS 'The session ends at this time however active it is.';
COMMENT ON COLUMN operator_sessions.revoked_at IS 'When it was ended by logout, a new password or disabling the operator.';
COMMENT ON COLUMN operator_sessions.remote_addr IS 'Address the login came from (X-Forwarded-For only from trusted proxies).';
COMMENT ON COLUMN operator_sessions.user_agent IS 'Browser the login came from, cut at 256 characters.';

CREATE TABLE operator_login_throttles (
    scope           text        NOT NULL,
    key             text        NOT NULL,
    failures        integer     NOT NULL,
    last_attempt_at timestamptz NOT NULL,
    locked_until    timestamptz,
    CONSTRAINT pk__operator_login_throttles PRIMARY KEY (scope, key),
    CONSTRAINT ck__operator_login_throttles__scope CHECK (scope IN ('address', 'operator')),
    CONSTRAINT ck__operator_login_throttles__key CHECK (char_length(key) BETWEEN 1 AND 64),
    CONSTRAINT ck__operator_login_throttles__failures CHECK (failures >= 0)
);
COMMENT ON TABLE operator_login_throttles IS 'Failed console logins per operator name and per caller address, and the lockouts they caused.';
COMMENT ON COLUMN operator_login_throttles.scope IS 'operator: failures of one login name; address: failures from one caller address.';
COMMENT ON COLUMN operator_login_throttles.key IS 'The login name as typed, lower case, whether or not an operator has it; or the caller''s IP address.';
COMMENT ON COLUMN operator_login_throttles.failures IS 'Attempts counted since the last quiet period; a success forgets the operator''s count.';
COMMENT ON COLUMN operator_login_throttles.last_attempt_at IS 'Last counted attempt; a long enough quiet period starts the count again.';
COMMENT ON COLUMN operator_login_throttles.locked_until IS 'Until then every login for this key is refused unchecked and uncounted.';

CREATE TABLE operator_actions (
    id          bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__operator_actions PRIMARY KEY,
    acted_at    timestamptz NOT NULL DEFAULT now(),
    operator_id integer     NOT NULL,
    action      text        NOT NULL,
    account_id  bigint,
    remote_addr inet,
    details     jsonb       NOT NULL DEFAULT '{}',
    CONSTRAINT fk__operator_actions__operator_id__operators FOREIGN KEY (operator_id)
        REFERENCES operators (id) ON DELETE RESTRICT,
    CONSTRAINT fk__operator_actions__account_id__accounts FOREIGN KEY (account_id)
        REFERENCES accounts (id) ON DELETE RESTRICT,
    CONSTRAINT ck__operator_actions__action CHECK (
        action IN ('login', 'logout', 'account.view', 'account.block', 'account.unblock', 'payer.add')
    ),
    -- Account actions name their account; logins and logouts name none.
    CONSTRAINT ck__operator_actions__account CHECK ((action LIKE 'account.%' OR action LIKE 'payer.%') = (account_id IS NOT NULL)),
    CONSTRAINT ck__operator_actions__details CHECK (jsonb_typeof(details) = 'object')
);
CREATE INDEX ix__operator_actions__account_id__id ON operator_actions (account_id, id) WHERE account_id IS NOT NULL;
CREATE INDEX ix__operator_actions__operator_id__acted_at ON operator_actions (operator_id, acted_at);
COMMENT ON TABLE operator_actions IS 'Append-only: what each operator did in the console, to which account, and when.';
COMMENT ON COLUMN operator_actions.acted_at IS 'When the action committed (with the change it records).';
COMMENT ON COLUMN operator_actions.operator_id IS 'Who did it.';
COMMENT ON COLUMN operator_actions.action IS 'login, logout, account.view, account.block, account.unblock, payer.add.';
COMMENT ON COLUMN operator_actions.account_id IS 'The account acted on; NULL for logins and logouts.';
COMMENT ON COLUMN operator_actions.remote_addr IS 'Address the operator acted from.';
COMMENT ON COLUMN operator_actions.details IS 'Non-secret facts of the action (status before, masked new payment code).';

CREATE TRIGGER tr__operator_actions__append_only BEFORE UPDATE OR DELETE ON operator_actions
    FOR EACH ROW EXECUTE FUNCTION tolem_refuse_change();
CREATE TRIGGER tr__operator_actions__no_truncate BEFORE TRUNCATE ON operator_actions
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();

CREATE INDEX ix__transfers__created_at ON transfers USING brin (created_at);

-- One throttle row, locked: created at zero when the key is new.
CREATE FUNCTION tolem_login_throttle_row(p_scope text, p_key text)
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
CREATE FUNCTION tolem_login_throttle_count(
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

CREATE FUNCTION tolem_operator_login_attempt(
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

CREATE FUNCTION tolem_operator_login_succeeded(p_name text, p_address text, p_address_limit integer)
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
