-- The QuickBooks company the sync writes to (connected or not), else the one whose tokens were used last.
-- Grain: at most one row.
SELECT
    t.realm_id,
    t.status,
    t.connected_at,
    t.disconnected_at,
    t.refreshed_at
FROM qbo_oauth_tokens AS t
ORDER BY CASE WHEN t.is_current THEN 0 ELSE 1 END, t.refreshed_at DESC
LIMIT 1
