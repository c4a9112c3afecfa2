-- The verdict of a run on every staged TaxDome object, counted per kind and status: the plan's, moved by each
-- status change of the load (sync_status_counts, kept in step with sync_object_status). A status the load
-- has moved every object of a kind out of counts 0 and is left out.
-- Grain: one row per TaxDome kind and status of the run.
SELECT
    c.taxdome_kind,
    c.status,
    c.objects
FROM sync_status_counts AS c
WHERE c.run_id = :run_id AND c.objects > 0
ORDER BY c.taxdome_kind, c.status
