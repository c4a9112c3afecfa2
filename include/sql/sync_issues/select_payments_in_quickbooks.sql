-- What is in the QuickBooks company now of one TaxDome account's payments (account_id bound, payment_id
-- null) or of one payment (payment_id bound, account_id null): payments (or credit memos), processing fees,
-- refunds. These go when the account or the payment stops syncing; an account's customer and invoices stay.
-- A null parameter matches nothing (= NULL is never true), so only the bound one picks the objects.
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
        AND (
            s.taxdome_id = :payment_id
            OR s.taxdome_id IN (
                SELECT p.payment_id
                FROM stg_taxdome__payments AS p
                WHERE p.account_id = :account_id
            )
        )
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
        (f.account_id = :account_id OR f.payment_id = :payment_id)
        AND s.status = 'synced'
        AND s.qbo_id IS NOT NULL
) AS owned
GROUP BY owned.taxdome_kind
ORDER BY owned.taxdome_kind
