-- The export batches that quarantined rows, newest first, for the Quarantine page's batch filter.
-- Grain: one row per batch.
SELECT
    b.batch_id,
    b.export_name,
    b.started_at,
    COUNT(*) AS rows_rejected
FROM stg_taxdome__rejected AS r
JOIN taxdome_export_batches AS b ON b.batch_id = r._batch_id
GROUP BY b.batch_id, b.export_name, b.started_at
ORDER BY b.started_at DESC, b.batch_id
LIMIT :limit
