-- The most recently planned run (for the command line and the UI).
-- Grain: at most one row.
SELECT
    r.run_id,
    r.realm_id,
    r.planned_at,
    r.dry_run,
    r.operations,
    r.preview_location
FROM sync_plan_runs AS r
ORDER BY r.planned_at DESC
LIMIT 1
