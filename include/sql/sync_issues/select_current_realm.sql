-- The QuickBooks company the sync writes to: the current one (connected or not), else that of the latest plan.
-- Grain: at most one row.
SELECT candidates.realm_id
FROM (
    SELECT
        t.realm_id,
        0 AS preference,
        t.connected_at AS seen_at
    FROM qbo_oauth_tokens AS t
    WHERE t.is_current
    UNION ALL
    SELECT
        r.realm_id,
        1 AS preference,
        r.planned_at AS seen_at
    FROM sync_plan_runs AS r
) AS candidates
ORDER BY candidates.preference, candidates.seen_at DESC
LIMIT 1
