-- Per-file counts of one staging batch, as the stage task logs them and `make demo` prints them.
-- Grain: one row per export file of the batch; rows_read = rows_staged + rows_rejected.
SELECT
    f.source_file,
    f.rows_read,
    f.rows_staged,
    f.rows_rejected,
    f.rows_inserted,
    f.rows_updated,
    f.rows_unchanged
FROM taxdome_export_batch_files AS f
WHERE f.batch_id = :batch_id
ORDER BY f.source_file  -- callers re-order by the contract's file order
