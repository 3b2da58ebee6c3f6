-- 0015: functions and triggers move to sql/functions; the ledger's two kinds of account become keys.
--
-- Why: the PL/pgSQL code was written inside migrations and redefined by later ones (tolem_accept
-- three times), so no single file said what the database runs. From here on sql/functions/*.sql
-- holds the current definition of every function and trigger, written to be applied again at
-- will; `tolem migrate` applies a file after the migrations whenever its checksum differs from
-- the one recorded below (src/tolem/db/migrate.py has the order rules).
--
-- The kinds of the ledger's legs: a provider's clearing account is a clearing account and an
-- account's ledger account a customer account. Nothing said so, which is why posting updated
-- both legs' balances, WHERE kind = 'customer', although the clearing leg of every transfer
-- stores none: an UPDATE that never changed a row, kept only in case the kinds were ever
-- crossed. A foreign key to (id, kind) states the rule instead (as the currency keys of 0010
-- do for currencies); it also stops a ledger account from changing its kind while it is in
-- use. Posting (tolem_post, sql/functions/ledger.sql) now moves the one customer balance.
-- The constant columns carry the kind for the keys; added with a default, they cost no rewrite.
--
-- Dropped: tolem_post_transfer, replaced by tolem_post; and tolem_accept's nine-argument form
-- of 0002 and 0009, which 0010 already dropped (IF EXISTS: a database is left as 0010 left it).
-- A server of the previous release still running while this migrates calls tolem_perform and
-- tolem_cancel bodies that name tolem_post_transfer until the functions files commit, right
-- after this migration, under the same lock: such a call fails, rolls back and is answered
-- "retry".

CREATE TABLE schema_functions (
    name       text        NOT NULL CONSTRAINT pk__schema_functions PRIMARY KEY,
    sha256     text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck__schema_functions__name CHECK (name ~ '^[a-z0-9_]+\.sql$'),
    CONSTRAINT ck__schema_functions__sha256 CHECK (sha256 ~ '^[0-9a-f]{64}$')
);
COMMENT ON TABLE schema_functions IS 'Files of sql/functions applied by tolem migrate, with the checksum of each as applied.';
COMMENT ON COLUMN schema_functions.name IS 'File name in sql/functions.';
COMMENT ON COLUMN schema_functions.sha256 IS 'Checksum of the file as last applied; a file that differs is pending.';
COMMENT ON COLUMN schema_functions.applied_at IS 'When the file was last applied.';

ALTER TABLE ledger_accounts
    ADD CONSTRAINT uq__ledger_accounts__kind__id UNIQUE (id, kind);
COMMENT ON CONSTRAINT uq__ledger_accounts__kind__id ON ledger_accounts
    IS 'Target of the (account, kind) keys of providers and accounts.';

ALTER TABLE providers
    ADD COLUMN clearing_kind text NOT NULL DEFAULT 'clearing',
    ADD CONSTRAINT ck__providers__clearing_kind CHECK (clearing_kind = 'clearing'),
    ADD CONSTRAINT fk__providers__clearing__kind__ledger_accounts
        FOREIGN KEY (clearing_ledger_account_id, clearing_kind) REFERENCES ledger_accounts (id, kind)
        ON DELETE RESTRICT;
COMMENT ON COLUMN providers.clearing_kind IS 'Always clearing: with the key beside it, the provider''s ledger account is a clearing account.';
COMMENT ON CONSTRAINT fk__providers__clearing__kind__ledger_accounts ON providers
    IS 'A provider''s ledger account is a clearing account, which stores no balance.';

ALTER TABLE accounts
    ADD COLUMN ledger_kind text NOT NULL DEFAULT 'customer',
    ADD CONSTRAINT ck__accounts__ledger_kind CHECK (ledger_kind = 'customer'),
    ADD CONSTRAINT fk__accounts__ledger__kind__ledger_accounts
        FOREIGN KEY (ledger_account_id, ledger_kind) REFERENCES ledger_accounts (id, kind)
        ON DELETE RESTRICT;
COMMENT ON COLUMN accounts.ledger_kind IS 'Always customer: with the key beside it, the account''s ledger account is a customer account.';
COMMENT ON CONSTRAINT fk__accounts__ledger__kind__ledger_accounts ON accounts
    IS 'An account''s ledger account is a customer account, which stores its balance.';

DROP FUNCTION IF EXISTS tolem_post_transfer(bigint, bigint, bigint, bigint, char, text, bigint);
DROP FUNCTION IF EXISTS tolem_accept(integer, text, text, bigint, timestamptz, text, boolean, timestamptz, integer);
