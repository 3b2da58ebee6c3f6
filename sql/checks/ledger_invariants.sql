-- Ledger invariants. Each `-- check:` block is one set-based query whose rows are violations
-- (violation, subject, detail); a sound ledger returns none from any of them.
-- Read by `tolem audit` and by the test suite after every database test.

-- check: balance_mismatch
-- A stored customer balance equals the sum of its entries.
SELECT 'balance_mismatch' AS violation, l.id::text AS subject,
       format('stored %s, entries sum to %s', l.balance_minor, coalesce(e.total, 0)) AS detail
  FROM ledger_accounts l
  LEFT JOIN (SELECT ledger_account_id, sum(amount_minor) AS total
               FROM ledger_entries GROUP BY ledger_account_id) e ON e.ledger_account_id = l.id
 WHERE l.kind = 'customer' AND l.balance_minor <> coalesce(e.total, 0);

-- check: ledger_not_balanced
-- The ledger sums to zero in each currency, counted by the currency of the account each entry
-- lands on: a transfer from a KGS account to a UZS one leaves KGS short and UZS over, though
-- the two sums together are zero.
SELECT 'ledger_not_balanced', l.currency::text,
       format('%s entries sum to %s', l.currency, sum(e.amount_minor))
  FROM ledger_entries e JOIN ledger_accounts l ON l.id = e.ledger_account_id
 GROUP BY l.currency
HAVING sum(e.amount_minor) <> 0;

-- check: transfer_currency_mismatch
-- A transfer moves money between two accounts of its own currency (written before the
-- database refused the mix, migration 0010, or with its keys switched off).
SELECT 'transfer_currency_mismatch', t.id::text,
       format('%s transfer from a %s account to a %s account', t.currency, d.currency, c.currency)
  FROM transfers t
  JOIN ledger_accounts d ON d.id = t.debit_ledger_account_id
  JOIN ledger_accounts c ON c.id = t.credit_ledger_account_id
 WHERE t.currency <> d.currency OR t.currency <> c.currency;

-- check: payment_currency_mismatch
-- A payment is in the currency of its account and of its provider.
SELECT 'payment_currency_mismatch', p.id::text,
       format('%s payment of a %s provider to a %s account', p.currency, pr.currency, l.currency)
  FROM payments p
  JOIN accounts a ON a.id = p.account_id
  JOIN ledger_accounts l ON l.id = a.ledger_account_id
  JOIN providers pr ON pr.id = p.provider_id
 WHERE p.currency <> l.currency OR p.currency <> pr.currency;

-- check: transfers_do_not_match_state
-- A payment holds exactly the transfers its state implies, each of the payment's amount:
-- credited once if credited or reversed, reversed once if reversed, never credited twice.
SELECT 'transfers_do_not_match_state', p.id::text,
       format('state %s, %s topup(s), %s reversal(s), amounts %s', p.state,
              count(t.id) FILTER (WHERE t.code = 'topup'),
              count(t.id) FILTER (WHERE t.code = 'reversal'),
              coalesce(string_agg(t.amount_minor::text, ',' ORDER BY t.id), '-'))
  FROM payments p LEFT JOIN transfers t ON t.payment_id = p.id
 GROUP BY p.id, p.state, p.amount_minor
HAVING count(t.id) FILTER (WHERE t.code = 'topup')
           <> CASE WHEN p.state IN ('credited', 'reversed') THEN 1 ELSE 0 END
    OR count(t.id) FILTER (WHERE t.code = 'reversal')
           <> CASE WHEN p.state = 'reversed' THEN 1 ELSE 0 END
    OR bool_or(t.amount_minor <> p.amount_minor);

-- check: transfer_accounts_mismatch
-- A top-up credits the payment's own account from its provider's clearing account.
SELECT 'transfer_accounts_mismatch', t.id::text, format('payment %s', p.id)
  FROM transfers t
  JOIN payments p ON p.id = t.payment_id
  JOIN accounts a ON a.id = p.account_id
  JOIN providers pr ON pr.id = p.provider_id
 WHERE t.code = 'topup'
   AND (t.credit_ledger_account_id <> a.ledger_account_id
        OR t.debit_ledger_account_id <> pr.clearing_ledger_account_id);

-- check: reversal_mismatch
-- A reversal undoes its original exactly: same payment, same amount, accounts swapped.
SELECT 'reversal_mismatch', r.id::text, format('reverses transfer %s', r.reverses_transfer_id)
  FROM transfers r JOIN transfers o ON o.id = r.reverses_transfer_id
 WHERE r.payment_id <> o.payment_id OR r.amount_minor <> o.amount_minor
    OR r.debit_ledger_account_id <> o.credit_ledger_account_id
    OR r.credit_ledger_account_id <> o.debit_ledger_account_id;

-- check: transfer_changed
-- No transfer was edited after it was written (its checksum still matches its content).
SELECT 'transfer_changed', t.id::text, 'content does not match the checksum written with it'
  FROM transfers t
 WHERE t.checksum IS DISTINCT FROM tolem_transfer_checksum(t);

-- check: protection_disabled
-- The triggers that keep the ledger append-only, payment codes permanent, currencies apart and
-- every credit, reversal and void in the billing's outbox are enabled.
SELECT 'protection_disabled', tgname::text, format('trigger on %s is disabled', tgrelid::regclass)
  FROM pg_trigger
 WHERE tgname IN ('tr__transfers__append_only', 'tr__transfers__no_truncate',
                  'tr__transfers__checksum', 'tr__payers__protect', 'tr__payers__no_truncate',
                  'tr__payments__currency', 'tr__ledger_accounts__currency',
                  'tr__accounts__ledger_account', 'tr__payments__outbox_insert',
                  'tr__payments__outbox_update', 'tr__outbox_events__guard',
                  'tr__outbox_events__no_truncate')
   AND tgenabled = 'D';
