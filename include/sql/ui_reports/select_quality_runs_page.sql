-- One page of the sync runs whose staged data was checked, newest check first: how many checks ran, failed
-- and failed critically; with the number of runs.
-- Grain: one row per run of the page (one row with NULL columns when the page is empty).
WITH runs AS (
    SELECT
        d.run_id,
        MAX(d.checked_at) AS checked_at,
        COUNT(*) AS checks,
        SUM(CASE WHEN d.success THEN 0 ELSE 1 END) AS failed,
        SUM(CASE WHEN NOT d.success AND d.severity = 'critical' THEN 1 ELSE 0 END) AS critical_failed
    FROM dq_results AS d
    GROUP BY d.run_id
),
page AS (
    SELECT r.*
    FROM runs AS r
    ORDER BY r.checked_at DESC, r.run_id DESC
    LIMIT :limit OFFSET :offset
)
SELECT
    t.total,
    p.run_id,
    p.checked_at,
    p.checks,
    p.failed,
    p.critical_failed
FROM (SELECT COUNT(*) AS total FROM runs) AS t
LEFT JOIN page AS p ON 1 = 1
ORDER BY p.checked_at DESC, p.run_id DESC
