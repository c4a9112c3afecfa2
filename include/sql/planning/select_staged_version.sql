-- The version of the staged firm: how many exports were staged, and the latest. Staging writes the staged
-- tables only in a batch's transaction, so two reads with the same version read the same firm.
-- Grain: one row.
SELECT
    (
        SELECT COUNT(*)
        FROM taxdome_export_batches AS b
        WHERE b.status = 'succeeded'
    ) AS exports,
    (
        SELECT b.batch_id
        FROM taxdome_export_batches AS b
        WHERE b.status = 'succeeded'
        ORDER BY b.finished_at DESC, b.batch_id DESC
        LIMIT 1
    ) AS latest_batch_id,
    (
        SELECT b.export_name
        FROM taxdome_export_batches AS b
        WHERE b.status = 'succeeded'
        ORDER BY b.finished_at DESC, b.batch_id DESC
        LIMIT 1
    ) AS latest_name
