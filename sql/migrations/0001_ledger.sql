-- 0001: customers, aggregators, payments and the append-only double-entry ledger.
--
-- Why this shape:
--  * A payment is unique per (provider, the provider's transaction id): that key alone makes a
--    retried pay idempotent, so it is a constraint here and never an application check.
--  * Money moves only through `transfers`, each debiting one ledger account and crediting one.
--    Transfers are never updated or deleted (triggers below); a cancel is a reversing transfer.
--  * Customer ledger accounts carry a stored balance (locked and updated in the transaction that
--    writes the transfer). Clearing accounts of providers do not: every pay of a provider would
--    otherwise queue on that one hot row. Their balance is the sum of their transfers.

CREATE TABLE ledger_accounts (
    id            bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__ledger_accounts PRIMARY KEY,
    kind          text        NOT NULL,
    currency      char(3)     NOT NULL,
    balance_minor bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck__ledger_accounts__kind CHECK (kind IN ('customer', 'clearing')),
    CONSTRAINT ck__ledger_accounts__currency CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck__ledger_accounts__balance CHECK (
        (kind = 'customer' AND balance_minor IS NOT NULL AND balance_minor >= 0)
        OR (kind = 'clearing' AND balance_minor IS NULL)
    )
);
COMMENT ON TABLE ledger_accounts IS 'Accounts of the double-entry ledger: one per customer account, one clearing account per provider.';
COMMENT ON COLUMN ledger_accounts.kind IS 'customer: money we owe a customer (never negative); clearing: money an aggregator owes us.';
COMMENT ON COLUMN ledger_accounts.currency IS 'ISO 4217 code of every amount on this account.';
COMMENT ON COLUMN ledger_accounts.balance_minor IS 'Stored balance in minor units for customer accounts; NULL for clearing accounts, whose balance is derived from transfers.';

CREATE TABLE accounts (
    id                bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__accounts PRIMARY KEY,
    email             text        NOT NULL,
    name              text        NOT NULL,
    status            text        NOT NULL DEFAULT 'active',
    ledger_account_id bigint      NOT NULL,
    external_ref      text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__accounts__ledger_account_id UNIQUE (ledger_account_id),
    CONSTRAINT uq__accounts__external_ref UNIQUE (external_ref),
    CONSTRAINT fk__accounts__ledger_account_id__ledger_accounts FOREIGN KEY (ledger_account_id)
        REFERENCES ledger_accounts (id) ON DELETE RESTRICT,
    CONSTRAINT ck__accounts__email CHECK (char_length(email) <= 254 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    CONSTRAINT ck__accounts__name CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT ck__accounts__status CHECK (status IN ('active', 'blocked')),
    CONSTRAINT ck__accounts__external_ref CHECK (char_length(external_ref) BETWEEN 1 AND 64)
);
CREATE INDEX ix__accounts__email ON accounts (lower(email));
COMMENT ON TABLE accounts IS 'A customer''s personal cabinet; holds one balance through its ledger account.';
COMMENT ON COLUMN accounts.email IS 'Contact email; support finds the account by it.';
COMMENT ON COLUMN accounts.name IS 'Full name of the customer as printed in the cabinet.';
COMMENT ON COLUMN accounts.status IS 'active accepts payments; blocked refuses new ones.';
COMMENT ON COLUMN accounts.ledger_account_id IS 'The customer ledger account that carries this account''s balance.';
COMMENT ON COLUMN accounts.external_ref IS 'Identifier of the account in an older billing, set by imports; makes re-imports idempotent.';
COMMENT ON COLUMN accounts.created_at IS 'When the account was created here.';
COMMENT ON COLUMN accounts.updated_at IS 'Last change of status.';

CREATE TABLE payers (
    id           bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__payers PRIMARY KEY,
    account_id   bigint      NOT NULL,
    payment_code text        NOT NULL,
    name         text        NOT NULL,
    origin       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__payers__payment_code UNIQUE (payment_code),
    CONSTRAINT fk__payers__account_id__accounts FOREIGN KEY (account_id)
        REFERENCES accounts (id) ON DELETE RESTRICT,
    CONSTRAINT ck__payers__payment_code CHECK (payment_code ~ '^[0-9A-Za-z-]{1,32}$'),
    CONSTRAINT ck__payers__name CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT ck__payers__origin CHECK (origin IN ('issued', 'imported'))
);
CREATE INDEX ix__payers__account_id ON payers (account_id);
COMMENT ON TABLE payers IS 'Whoever pays into an account; each payer has exactly one payment code, forever.';
COMMENT ON COLUMN payers.account_id IS 'Account this payer pays into; fixed for life.';
COMMENT ON COLUMN payers.payment_code IS 'What the customer types at the kiosk or in the wallet. Never changes, never reused.';
COMMENT ON COLUMN payers.name IS 'Payer name; check answers show it masked.';
COMMENT ON COLUMN payers.origin IS 'issued: generated here (00…, Luhn); imported: taken as-is from an older billing.';
COMMENT ON COLUMN payers.created_at IS 'When the payer (and so the code) was created.';

CREATE TABLE services (
    id         bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__services PRIMARY KEY,
    account_id bigint      NOT NULL,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__services__account_id__name UNIQUE (account_id, name),
    CONSTRAINT fk__services__account_id__accounts FOREIGN KEY (account_id)
        REFERENCES accounts (id) ON DELETE RESTRICT,
    CONSTRAINT ck__services__name CHECK (char_length(name) BETWEEN 1 AND 253)
);
CREATE INDEX ix__services__name ON services (lower(name));
COMMENT ON TABLE services IS 'Names of hosted services (domains, servers) of an account, so support can find the account by one.';
COMMENT ON COLUMN services.account_id IS 'Account the service belongs to.';
COMMENT ON COLUMN services.name IS 'The service name as the customer knows it, e.g. a domain.';

CREATE TABLE providers (
    id                         integer GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__providers PRIMARY KEY,
    name                       text        NOT NULL,
    protocol                   text        NOT NULL,
    enabled                    boolean     NOT NULL DEFAULT true,
    allow_ips                  cidr[]      NOT NULL DEFAULT '{}',
    login                      text,
    password_hash              text,
    secret                     text,
    service_id                 text,
    min_amount_minor           bigint,
    max_amount_minor           bigint,
    currency                   char(3)     NOT NULL,
    timezone                   text,
    clearing_ledger_account_id bigint      NOT NULL,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__providers__name UNIQUE (name),
    CONSTRAINT uq__providers__clearing_ledger_account_id UNIQUE (clearing_ledger_account_id),
    CONSTRAINT fk__providers__clearing_ledger_account_id__ledger_accounts
        FOREIGN KEY (clearing_ledger_account_id) REFERENCES ledger_accounts (id) ON DELETE RESTRICT,
    CONSTRAINT ck__providers__name CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    CONSTRAINT ck__providers__protocol CHECK (protocol IN ('osmp', 'payme', 'click')),
    CONSTRAINT ck__providers__login CHECK (char_length(login) BETWEEN 1 AND 64),
    CONSTRAINT ck__providers__password_hash CHECK (char_length(password_hash) <= 256),
    CONSTRAINT ck__providers__secret CHECK (char_length(secret) BETWEEN 1 AND 256),
    CONSTRAINT ck__providers__service_id CHECK (char_length(service_id) BETWEEN 1 AND 64),
    CONSTRAINT ck__providers__min_amount CHECK (min_amount_minor > 0),
    CONSTRAINT ck__providers__max_amount CHECK (max_amount_minor > 0),
    CONSTRAINT ck__providers__limits CHECK (min_amount_minor <= max_amount_minor),
    CONSTRAINT ck__providers__currency CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck__providers__timezone CHECK (char_length(timezone) BETWEEN 1 AND 64),
    -- Anyone may reach a provider without an allow-list, so then it must prove who it is.
    CONSTRAINT ck__providers__authenticated CHECK (
        cardinality(allow_ips) > 0 OR password_hash IS NOT NULL OR secret IS NOT NULL
    )
);
COMMENT ON TABLE providers IS 'One aggregator connection: protocol, credentials, allow-list, limits; its gateway is /gw/{name}.';
COMMENT ON COLUMN providers.name IS 'Short name used in the gateway URL.';
COMMENT ON COLUMN providers.protocol IS 'Wire protocol the gateway speaks to this provider.';
COMMENT ON COLUMN providers.enabled IS 'A disabled provider gets 404 and moves no money.';
COMMENT ON COLUMN providers.allow_ips IS 'Networks allowed to call; empty means any (credentials then required).';
COMMENT ON COLUMN providers.login IS 'HTTP Basic login expected from the provider, if any.';
COMMENT ON COLUMN providers.password_hash IS 'Salted scrypt hash of the HTTP Basic password (Payme key); never the password.';
COMMENT ON COLUMN providers.secret IS 'Signature key (Click). Needed in clear to compute signatures; never printed or returned.';
COMMENT ON COLUMN providers.service_id IS 'Our service id at the provider (Click), checked against requests.';
COMMENT ON COLUMN providers.min_amount_minor IS 'Smallest amount accepted per payment, minor units; NULL = no limit.';
COMMENT ON COLUMN providers.max_amount_minor IS 'Largest amount accepted per payment, minor units; NULL = no limit.';
COMMENT ON COLUMN providers.currency IS 'Currency of the amounts this provider sends.';
COMMENT ON COLUMN providers.timezone IS 'Zone of the provider''s local timestamps when it differs from the deployment''s.';
COMMENT ON COLUMN providers.clearing_ledger_account_id IS 'Ledger account debited by this provider''s payments.';
COMMENT ON COLUMN providers.updated_at IS 'Last configuration change.';

CREATE TABLE payments (
    id                bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__payments PRIMARY KEY,
    provider_id       integer     NOT NULL,
    external_id       text        NOT NULL,
    payer_id          bigint      NOT NULL,
    account_id        bigint      NOT NULL,
    amount_minor      bigint      NOT NULL,
    currency          char(3)     NOT NULL,
    state             text        NOT NULL,
    provider_time     timestamptz,
    provider_time_raw text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    credited_at       timestamptz,
    cancelled_at      timestamptz,
    cancel_reason     integer,
    CONSTRAINT uq__payments__provider_id__external_id UNIQUE (provider_id, external_id),
    CONSTRAINT fk__payments__provider_id__providers FOREIGN KEY (provider_id)
        REFERENCES providers (id) ON DELETE RESTRICT,
    CONSTRAINT fk__payments__payer_id__payers FOREIGN KEY (payer_id)
        REFERENCES payers (id) ON DELETE RESTRICT,
    CONSTRAINT fk__payments__account_id__accounts FOREIGN KEY (account_id)
        REFERENCES accounts (id) ON DELETE RESTRICT,
    CONSTRAINT ck__payments__external_id CHECK (char_length(external_id) BETWEEN 1 AND 64),
    CONSTRAINT ck__payments__amount CHECK (amount_minor > 0),
    CONSTRAINT ck__payments__currency CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck__payments__provider_time_raw CHECK (char_length(provider_time_raw) <= 64),
    CONSTRAINT ck__payments__state CHECK (
        (state = 'reserved' AND credited_at IS NULL AND cancelled_at IS NULL)
        OR (state = 'credited' AND credited_at IS NOT NULL AND cancelled_at IS NULL)
        OR (state = 'voided' AND credited_at IS NULL AND cancelled_at IS NOT NULL)
        OR (state = 'reversed' AND credited_at IS NOT NULL AND cancelled_at IS NOT NULL)
    )
);
CREATE INDEX ix__payments__account_id__created_at ON payments (account_id, created_at DESC);
CREATE INDEX ix__payments__provider_id__provider_time ON payments (provider_id, provider_time);
CREATE INDEX ix__payments__state__created_at ON payments (created_at) WHERE state = 'reserved';
COMMENT ON TABLE payments IS 'One aggregator transaction. Its state changes; the money it moved lives in transfers.';
COMMENT ON COLUMN payments.id IS 'Our id of the payment (OSMP prv_txn, Payme transaction, Click prepare/confirm id).';
COMMENT ON COLUMN payments.provider_id IS 'Aggregator that sent the payment.';
COMMENT ON COLUMN payments.currency IS 'Currency of amount_minor.';
COMMENT ON COLUMN payments.external_id IS 'The provider''s transaction id as text (OSMP txn_id has up to 28 digits); the idempotency key with provider_id.';
COMMENT ON COLUMN payments.payer_id IS 'Payer whose payment code was paid.';
COMMENT ON COLUMN payments.account_id IS 'Account credited (the payer''s account at payment time).';
COMMENT ON COLUMN payments.amount_minor IS 'Amount in minor units.';
COMMENT ON COLUMN payments.state IS 'reserved (two-phase, not yet credited), credited, voided (reservation cancelled), reversed (credit cancelled).';
COMMENT ON COLUMN payments.provider_time IS 'The provider''s own timestamp of the transaction, in UTC.';
COMMENT ON COLUMN payments.provider_time_raw IS 'That timestamp exactly as the provider sent it.';
COMMENT ON COLUMN payments.created_at IS 'When we first recorded the payment.';
COMMENT ON COLUMN payments.credited_at IS 'When the account was credited.';
COMMENT ON COLUMN payments.cancelled_at IS 'When the reservation was voided or the credit reversed.';
COMMENT ON COLUMN payments.cancel_reason IS 'Reason code the provider gave for the cancel (Payme reason), if any.';

CREATE TABLE transfers (
    id                       bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT pk__transfers PRIMARY KEY,
    debit_ledger_account_id  bigint      NOT NULL,
    credit_ledger_account_id bigint      NOT NULL,
    amount_minor             bigint      NOT NULL,
    currency                 char(3)     NOT NULL,
    code                     text        NOT NULL,
    payment_id               bigint      NOT NULL,
    reverses_transfer_id     bigint,
    created_at               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq__transfers__payment_id__code UNIQUE (payment_id, code),
    CONSTRAINT uq__transfers__reverses_transfer_id UNIQUE (reverses_transfer_id),
    CONSTRAINT fk__transfers__debit_ledger_account_id__ledger_accounts
        FOREIGN KEY (debit_ledger_account_id) REFERENCES ledger_accounts (id) ON DELETE RESTRICT,
    CONSTRAINT fk__transfers__credit_ledger_account_id__ledger_accounts
        FOREIGN KEY (credit_ledger_account_id) REFERENCES ledger_accounts (id) ON DELETE RESTRICT,
    CONSTRAINT fk__transfers__payment_id__payments FOREIGN KEY (payment_id)
        REFERENCES payments (id) ON DELETE RESTRICT,
    CONSTRAINT fk__transfers__reverses_transfer_id__transfers FOREIGN KEY (reverses_transfer_id)
        REFERENCES transfers (id) ON DELETE RESTRICT,
    CONSTRAINT ck__transfers__amount CHECK (amount_minor > 0),
    CONSTRAINT ck__transfers__currency CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT ck__transfers__distinct_accounts CHECK (debit_ledger_account_id <> credit_ledger_account_id),
    CONSTRAINT ck__transfers__code CHECK (code IN ('topup', 'reversal')),
    CONSTRAINT ck__transfers__reversal_link CHECK ((code = 'reversal') = (reverses_transfer_id IS NOT NULL))
);
CREATE INDEX ix__transfers__debit_ledger_account_id ON transfers (debit_ledger_account_id);
CREATE INDEX ix__transfers__credit_ledger_account_id ON transfers (credit_ledger_account_id);
COMMENT ON TABLE transfers IS 'Append-only ledger: each row debits one ledger account and credits another by the same amount.';
COMMENT ON COLUMN transfers.debit_ledger_account_id IS 'Account the money leaves.';
COMMENT ON COLUMN transfers.credit_ledger_account_id IS 'Account the money reaches.';
COMMENT ON COLUMN transfers.amount_minor IS 'Amount moved, minor units, always positive.';
COMMENT ON COLUMN transfers.currency IS 'Currency of amount_minor; both accounts hold it.';
COMMENT ON COLUMN transfers.code IS 'Why money moved: topup (a payment credited) or reversal (a credited payment cancelled).';
COMMENT ON COLUMN transfers.payment_id IS 'Payment this transfer belongs to; at most one transfer per payment and code.';
COMMENT ON COLUMN transfers.reverses_transfer_id IS 'For a reversal, the transfer it undoes (at most once).';
COMMENT ON COLUMN transfers.created_at IS 'When the transfer was committed.';

-- Two legs per transfer: the view the audit and any report reads entries from.
CREATE VIEW ledger_entries AS
    SELECT t.id AS transfer_id, t.debit_ledger_account_id AS ledger_account_id,
           -t.amount_minor AS amount_minor, t.code, t.payment_id, t.created_at
      FROM transfers t
    UNION ALL
    SELECT t.id, t.credit_ledger_account_id, t.amount_minor, t.code, t.payment_id, t.created_at
      FROM transfers t;
COMMENT ON VIEW ledger_entries IS 'Each transfer as its debit (negative) and credit (positive) entry.';

CREATE FUNCTION tolem_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: the table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END;
$$;
COMMENT ON FUNCTION tolem_refuse_change() IS 'Trigger body that makes a table append-only.';

CREATE TRIGGER tr__transfers__append_only BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION tolem_refuse_change();
CREATE TRIGGER tr__transfers__no_truncate BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();

-- A payment code is never reused, so a payer is never deleted and its code never edited.
CREATE FUNCTION tolem_protect_payer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.payment_code IS DISTINCT FROM OLD.payment_code
       OR NEW.account_id IS DISTINCT FROM OLD.account_id THEN
        RAISE EXCEPTION 'payers keep their payment code and account forever'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION tolem_protect_payer() IS 'Keeps payment codes bound to their payer and account forever.';
CREATE TRIGGER tr__payers__protect BEFORE UPDATE OR DELETE ON payers
    FOR EACH ROW EXECUTE FUNCTION tolem_protect_payer();
CREATE TRIGGER tr__payers__no_truncate BEFORE TRUNCATE ON payers
    FOR EACH STATEMENT EXECUTE FUNCTION tolem_refuse_change();
