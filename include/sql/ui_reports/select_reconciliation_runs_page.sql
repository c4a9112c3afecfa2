-- One page of reconciliation runs, newest first, with the number of runs.
-- Grain: one row per run of the page (one row with NULL columns when the page is empty).
WITH page AS (
    SELECT r.*
    FROM reconciliation_runs AS r
    ORDER BY r.started_at DESC, r.recon_run_id DESC
    LIMIT :limit OFFSET :offset
)
SELECT
    t.total,
    p.recon_run_id,
    p.realm_id,
    p.sync_run_id,
    p.period_from,
    p.period_to,
    p.started_at,
    p.finished_at,
    p.verdict,
    p.unexplained,
    p.report_location
FROM (SELECT COUNT(*) AS total FROM reconciliation_runs) AS t
LEFT JOIN page AS p ON 1 = 1
ORDER BY p.started_at DESC, p.recon_run_id DESC
