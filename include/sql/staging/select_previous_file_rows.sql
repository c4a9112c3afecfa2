-- Rows read per file at the latest successful load: a file that lost many rows since may be cut short.
-- Grain: one row per file of that batch. Runs inside a load's transaction, before it records its own batch.
SELECT
    f.source_file,
    f.rows_read
FROM taxdome_export_batch_files AS f
WHERE f.batch_id = (
    SELECT b.batch_id
    FROM taxdome_export_batches AS b
    WHERE b.status = :succeeded
    ORDER BY b.finished_at DESC
    LIMIT 1
)
