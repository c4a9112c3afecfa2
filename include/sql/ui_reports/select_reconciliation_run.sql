-- One reconciliation run by its id.
-- Grain: at most one row.
SELECT
    r.recon_run_id,
    r.realm_id,
    r.sync_run_id,
    r.period_from,
    r.period_to,
    r.started_at,
    r.finished_at,
    r.verdict,
    r.unexplained,
    r.report_location
FROM reconciliation_runs AS r
WHERE r.recon_run_id = :recon_run_id
