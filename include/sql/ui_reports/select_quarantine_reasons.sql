-- The files and reasons of quarantined rows (of one batch, or of every batch), most frequent
-- first, for the Quarantine page's file and reason filters.
-- Grain: one row per file and reason.
SELECT
    r.source_file,
    r.reason,
    COUNT(*) AS row_count
FROM stg_taxdome__rejected AS r
WHERE CAST(:batch_id AS TEXT) IS NULL OR r._batch_id = :batch_id
GROUP BY r.source_file, r.reason
ORDER BY row_count DESC, r.source_file, r.reason
LIMIT :limit
