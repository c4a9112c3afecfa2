-- One TaxDome object's verdict in the latest run that has one, with that run.
-- Runs drive the join (CROSS JOIN keeps SQLite from reordering it): each run's verdict is then read by its
-- key instead of scanning every run's verdicts.
-- parent_id: a refund's payment or an invoice's account (unsyncing it stops the object from syncing).
-- Grain: at most one row.
SELECT
    s.run_id,
    s.realm_id,
    r.planned_at,
    r.dry_run,
    s.status,
    s.reason,
    s.qbo_entity,
    s.qbo_id,
    s.qbo_link,
    COALESCE(f.payment_id, i.account_id) AS parent_id
FROM sync_plan_runs AS r
CROSS JOIN sync_object_status AS s
LEFT JOIN stg_taxdome__refunds AS f
    ON s.taxdome_kind = 'refund' AND f.refund_id = s.taxdome_id
LEFT JOIN stg_taxdome__invoices AS i
    ON s.taxdome_kind = 'invoice' AND i.invoice_id = s.taxdome_id
WHERE
    s.run_id = r.run_id
    AND s.taxdome_kind = :taxdome_kind
    AND s.taxdome_id = :taxdome_id
ORDER BY r.planned_at DESC
LIMIT 1
