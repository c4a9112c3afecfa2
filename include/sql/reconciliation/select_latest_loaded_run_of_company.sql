-- The company's most recently loaded sync run: its object verdicts are the sync's latest word.
-- Grain: at most one row.
SELECT
    r.run_id
FROM sync_plan_runs AS r
WHERE r.realm_id = :realm_id
  AND r.loaded_at IS NOT NULL
ORDER BY r.loaded_at DESC
LIMIT 1
