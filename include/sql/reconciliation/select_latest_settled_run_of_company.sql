-- The company's latest settled sync run: loaded, or planned with nothing to write (its load is skipped, yet
-- its object verdicts are the sync's latest word: an object a newer export added and the plan kept out of
-- QuickBooks is explained by it). A dry run, or a plan still to be loaded, settles nothing.
-- Grain: at most one row.
SELECT
    r.run_id
FROM sync_plan_runs AS r
WHERE r.realm_id = :realm_id
  AND NOT r.dry_run
  AND (r.loaded_at IS NOT NULL OR r.operations = 0)
ORDER BY COALESCE(r.loaded_at, r.planned_at) DESC, r.run_id DESC
LIMIT 1
