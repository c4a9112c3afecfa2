-- What of one TaxDome payment is in the QuickBooks company now: the payment (or credit memo), its
-- processing fee, its refunds. These go when the payment stops syncing.
-- Grain: one row per TaxDome kind present.
SELECT
    owned.taxdome_kind,
    COUNT(*) AS objects
FROM (
    SELECT s.taxdome_kind
    FROM qbo_sync_state AS s
    WHERE
        s.realm_id = :realm_id
        AND s.taxdome_kind IN ('payment', 'credit_memo', 'fee')
        AND s.taxdome_id = :payment_id
        AND s.status = 'synced'
        AND s.qbo_id IS NOT NULL
    UNION ALL
    SELECT s.taxdome_kind
    FROM stg_taxdome__refunds AS f
    INNER JOIN qbo_sync_state AS s
        ON
            s.realm_id = :realm_id
            AND s.taxdome_kind = 'refund'
            AND s.taxdome_id = f.refund_id
    WHERE
        f.payment_id = :payment_id
        AND s.status = 'synced'
        AND s.qbo_id IS NOT NULL
) AS owned
GROUP BY owned.taxdome_kind
ORDER BY owned.taxdome_kind
