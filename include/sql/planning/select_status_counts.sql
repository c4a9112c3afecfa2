-- The verdict of a run's plan on every staged TaxDome object, counted per kind and status.
-- Grain: one row per TaxDome kind and status of the run.
SELECT
    s.taxdome_kind,
    s.status,
    COUNT(*) AS objects
FROM sync_object_status AS s
WHERE s.run_id = :run_id
GROUP BY s.taxdome_kind, s.status
ORDER BY s.taxdome_kind, s.status
