-- Payments of an account that is not staged: there is no QuickBooks customer to receive them from.
-- Grain: one row per offending row (the first `id_limit` by TaxDome id) with the reference that is not staged,
-- or one row with null ids when every reference resolves; every row carries the counts.
WITH unresolved AS (
    SELECT
        p.payment_id AS taxdome_id,
        p.account_id AS unknown_reference
    FROM stg_taxdome__payments AS p
    WHERE NOT EXISTS (SELECT 1 FROM stg_taxdome__accounts AS parent WHERE parent.account_id = p.account_id)
)
SELECT
    (SELECT COUNT(*) FROM stg_taxdome__payments) AS evaluated_rows,
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
