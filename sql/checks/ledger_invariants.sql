-- Ledger invariants: every query row is a violation; a healthy ledger returns none.
-- Read by `tolem audit` and by the test suite after every database test.

-- A stored customer balance equals the sum of its entries.
SELECT 'balance_mismatch' AS violation, l.id::text AS subject,
       format('stored %s, entries sum to %s', l.balance_minor, coalesce(e.total, 0)) AS detail
  FROM ledger_accounts l
  LEFT JOIN (SELECT ledger_account_id, sum(amount_minor) AS total
               FROM ledger_entries GROUP BY ledger_account_id) e ON e.ledger_account_id = l.id
 WHERE l.kind = 'customer' AND l.balance_minor <> coalesce(e.total, 0)
UNION ALL
-- A payment holds exactly the transfers its state implies, each of the payment's amount.
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
    OR bool_or(t.amount_minor <> p.amount_minor)
UNION ALL
-- A reversal undoes its original exactly: same payment, accounts swapped.
SELECT 'reversal_mismatch', r.id::text, format('reverses transfer %s', r.reverses_transfer_id)
  FROM transfers r JOIN transfers o ON o.id = r.reverses_transfer_id
 WHERE r.payment_id <> o.payment_id OR r.amount_minor <> o.amount_minor
    OR r.debit_ledger_account_id <> o.credit_ledger_account_id
    OR r.credit_ledger_account_id <> o.debit_ledger_account_id
UNION ALL
-- The whole ledger sums to zero.
SELECT 'ledger_not_balanced', NULL, format('entries sum to %s', sum(amount_minor))
  FROM ledger_entries
HAVING sum(amount_minor) <> 0;
