-- One page of a run's objects in some statuses among some TaxDome kinds (a sync-issue category or all), for
-- the Sync issues page. kinds and statuses are lists (expanding parameters); the primary key (run_id,
-- taxdome_kind, taxdome_id) serves the filter and the order, so a page reads only its own rows plus the
-- offset's.
-- parent_id: a refund's payment or an invoice's account (unsyncing it stops the object from syncing).
-- Grain: one row per TaxDome object, at most page_size of them.
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
    AND s.status IN :statuses
    AND s.taxdome_kind IN :kinds
ORDER BY s.taxdome_kind, s.taxdome_id
LIMIT :page_size OFFSET :page_offset
