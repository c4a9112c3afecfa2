-- The unexplained differences of the most recent reconciliation runs that judged the company, newest first
-- (the Overview charts them oldest first).
-- Grain: one row per run, at most run_limit.
SELECT
    r.recon_run_id,
    r.started_at,
    r.verdict,
    r.unexplained
FROM reconciliation_runs AS r
WHERE r.verdict IS NOT NULL AND r.verdict <> 'superseded'
ORDER BY r.started_at DESC
LIMIT :run_limit
