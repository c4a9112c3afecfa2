-- Every QBO object of the company whose TaxDome marker (taxdome:<kind>:<id>) another object of the same
-- entity also carries: copies left by concurrent loads of earlier versions, or made by hand. Read from the
-- read-back copies; inactive customers are already out of the way, voided transactions no longer carry the
-- marker alone. With what the sync state records of the marker's TaxDome object: its QBO id (the copy to
-- keep) and status (null when the sync never knew the object).
-- Grain: one row per duplicated QBO object.
WITH marked AS (
    SELECT 'Customer' AS entity, c.qbo_id, c.marker, c.balance_cents AS amount_cents, c.sync_token
    FROM stg_qbo__customers AS c
    WHERE c.realm_id = :realm_id AND c.active = TRUE AND c.marker LIKE 'taxdome:%'
    UNION ALL
    SELECT 'Invoice', i.qbo_id, i.marker, i.total_cents, i.sync_token
    FROM stg_qbo__invoices AS i
    WHERE i.realm_id = :realm_id AND i.marker LIKE 'taxdome:%'
    UNION ALL
    SELECT 'Payment', p.qbo_id, p.marker, p.total_cents, p.sync_token
    FROM stg_qbo__payments AS p
    WHERE p.realm_id = :realm_id AND p.marker LIKE 'taxdome:%'
    UNION ALL
    SELECT 'CreditMemo', m.qbo_id, m.marker, m.total_cents, m.sync_token
    FROM stg_qbo__credit_memos AS m
    WHERE m.realm_id = :realm_id AND m.marker LIKE 'taxdome:%'
    UNION ALL
    SELECT 'Purchase', u.qbo_id, u.marker, u.total_cents, u.sync_token
    FROM stg_qbo__purchases AS u
    WHERE u.realm_id = :realm_id AND u.marker LIKE 'taxdome:%'
    UNION ALL
    SELECT 'RefundReceipt', r.qbo_id, r.marker, r.total_cents, r.sync_token
    FROM stg_qbo__refund_receipts AS r
    WHERE r.realm_id = :realm_id AND r.marker LIKE 'taxdome:%'
),

duplicated AS (
    SELECT entity, marker
    FROM marked
    GROUP BY entity, marker
    HAVING COUNT(*) > 1
)

SELECT
    m.entity,
    m.marker,
    m.qbo_id,
    m.amount_cents,
    m.sync_token,
    s.qbo_id AS synced_qbo_id,
    s.status AS state_status
FROM marked AS m
INNER JOIN duplicated AS d
    ON d.entity = m.entity AND d.marker = m.marker
LEFT JOIN qbo_sync_state AS s
    ON
        s.realm_id = :realm_id
        AND s.qbo_entity = m.entity
        AND 'taxdome:' || s.taxdome_kind || ':' || s.taxdome_id = m.marker
ORDER BY m.entity, m.marker, m.qbo_id
