-- The most recently loaded run and what its load did (for the command line).
-- Grain: at most one row.
SELECT
    r.run_id,
    r.realm_id,
    r.loaded_at,
    r.load_receipt
FROM sync_plan_runs AS r
WHERE r.loaded_at IS NOT NULL
ORDER BY r.loaded_at DESC
LIMIT 1
