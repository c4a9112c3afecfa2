-- The company's latest plan, what its load did, and what the plan was made from (no inputs for a plan
-- recorded without them): whether a new run's plan would be the same.
-- Grain: at most one row.
SELECT
    r.run_id,
    r.planned_at,
    r.dry_run,
    r.operations,
    r.loaded_at,
    r.load_receipt,
    i.inputs,
    i.qbo_read_at
FROM sync_plan_runs AS r
LEFT JOIN sync_run_inputs AS i
    ON i.run_id = r.run_id
    AND i.step = :step
WHERE r.realm_id = :realm_id
ORDER BY r.planned_at DESC, r.run_id DESC
LIMIT 1
