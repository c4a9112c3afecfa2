-- A run's objects of one status among some TaxDome kinds (one sync-issue category), for a person to read.
-- parent_id is what stops a refund or an invoice from syncing when unsynced: its payment, its account.
-- Grain: one row per TaxDome object, at most row_limit of them; kinds is a list (an expanding parameter).
SELECT
    s.taxdome_kind,
    s.taxdome_id,
    s.status,
    s.reason,
    s.qbo_entity,
    s.qbo_id,
    s.qbo_link,
    COALESCE(f.payment_id, i.account_id) AS parent_id
FROM sync_object_status AS s
LEFT JOIN stg_taxdome__refunds AS f
    ON s.taxdome_kind = 'refund' AND f.refund_id = s.taxdome_id
LEFT JOIN stg_taxdome__invoices AS i
    ON s.taxdome_kind = 'invoice' AND i.invoice_id = s.taxdome_id
WHERE
    s.run_id = :run_id
    AND s.status = :status
    AND s.taxdome_kind IN :kinds
ORDER BY s.taxdome_kind, s.taxdome_id
LIMIT :row_limit
