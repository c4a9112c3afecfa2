-- The most recent reconciliation run that judged the company (for the command line): a run a sync
-- superseded mid-comparison judged nothing.
-- Grain: at most one row.
SELECT
    r.recon_run_id,
    r.realm_id,
    r.sync_run_id,
    r.period_from,
    r.period_to,
    r.finished_at,
    r.verdict,
    r.unexplained,
    r.report_location
FROM reconciliation_runs AS r
WHERE r.verdict <> 'superseded'
ORDER BY r.started_at DESC
LIMIT 1
