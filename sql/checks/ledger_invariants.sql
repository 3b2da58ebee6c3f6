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
-- The whole ledger sums to zero (every transfer debits exactly what it credits).
SELECT 'ledger_not_balanced', NULL, format('entries sum to %s', sum(amount_minor))
  FROM ledger_entries
HAVING sum(amount_minor) <> 0;

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
-- The triggers that keep the ledger append-only and payment codes permanent are enabled.
SELECT 'protection_disabled', tgname::text, format('trigger on %s is disabled', tgrelid::regclass)
  FROM pg_trigger
 WHERE tgname IN ('tr__transfers__append_only', 'tr__transfers__no_truncate',
                  'tr__transfers__checksum', 'tr__payers__protect', 'tr__payers__no_truncate')
   AND tgenabled = 'D';
