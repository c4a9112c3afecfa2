-- The version of the staged firm: how many exports were staged, and the latest. Staging writes the staged
-- tables only in a batch's transaction, so two reads with the same version read the same firm.
-- Grain: one row.
WITH succeeded AS (
    SELECT b.batch_id, b.export_name, b.finished_at
    FROM taxdome_export_batches AS b
    WHERE b.status = 'succeeded'
),
latest AS (
    SELECT s.batch_id, s.export_name
    FROM succeeded AS s
    ORDER BY s.finished_at DESC, s.batch_id DESC
    LIMIT 1
)
SELECT
    (SELECT COUNT(*) FROM succeeded) AS exports,
    (SELECT l.batch_id FROM latest AS l) AS latest_batch_id,
    (SELECT l.export_name FROM latest AS l) AS latest_name
