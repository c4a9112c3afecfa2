-- One page of a run's objects in some statuses among some TaxDome kinds (a sync-issue category or all), for
-- the `issues` command and the UI's Sync issues page. kinds and statuses are lists (expanding parameters).
-- The page is cut first, in the primary key's order (run_id, taxdome_kind, taxdome_id), and only its rows
-- are joined to their parents.
-- parent_id: a refund's payment or an invoice's account (unsyncing it stops the object from syncing).
-- Grain: one row per TaxDome object, at most page_size of them.
SELECT
    page.taxdome_kind,
    page.taxdome_id,
    page.status,
    page.reason,
    page.qbo_entity,
    page.qbo_id,
    page.qbo_link,
    COALESCE(f.payment_id, i.account_id) AS parent_id
FROM (
    SELECT
        s.taxdome_kind,
        s.taxdome_id,
        s.status,
        s.reason,
        s.qbo_entity,
        s.qbo_id,
        s.qbo_link
    FROM sync_object_status AS s
    WHERE
        s.run_id = :run_id
        AND s.status IN :statuses
        AND s.taxdome_kind IN :kinds
    ORDER BY s.taxdome_kind, s.taxdome_id
    LIMIT :page_size OFFSET :page_offset
) AS page
LEFT JOIN stg_taxdome__refunds AS f
    ON page.taxdome_kind = 'refund' AND f.refund_id = page.taxdome_id
LEFT JOIN stg_taxdome__invoices AS i
    ON page.taxdome_kind = 'invoice' AND i.invoice_id = page.taxdome_id
ORDER BY page.taxdome_kind, page.taxdome_id
