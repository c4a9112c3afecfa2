-- Invoice lines whose invoice is not staged: the planner would put them on no invoice.
-- Grain: one row per offending row (the first `id_limit` by TaxDome id) with the reference that is not staged,
-- or one row with null ids when every reference resolves; every row carries the counts.
WITH unresolved AS (
    SELECT
        l.invoice_id || '/' || CAST(l.line_no AS TEXT) AS taxdome_id,
        l.invoice_id AS unknown_reference
    FROM stg_taxdome__invoice_lines AS l
    WHERE NOT EXISTS (SELECT 1 FROM stg_taxdome__invoices AS parent WHERE parent.invoice_id = l.invoice_id)
)
SELECT
    (SELECT COUNT(*) FROM stg_taxdome__invoice_lines) AS evaluated_rows,
    (SELECT COUNT(*) FROM unresolved) AS unexpected_count,
    first_unresolved.taxdome_id,
    first_unresolved.unknown_reference
FROM (SELECT 1 AS anchor) AS one_row
LEFT JOIN (
    SELECT u.taxdome_id, u.unknown_reference
    FROM unresolved AS u
    ORDER BY u.taxdome_id
    LIMIT :id_limit
) AS first_unresolved ON 1 = 1
