-- The most recent staging batches, newest first: what was loaded, when, and with what outcome.
-- Grain: one row per batch. deletion_proof: whether the export may say a row it lacks was deleted in TaxDome.
SELECT
    b.batch_id,
    b.export_name,
    b.export_location,
    b.status,
    b.started_at,
    b.finished_at,
    b.rows_read,
    b.rows_staged,
    b.rows_rejected,
    b.deletion_proof,
    b.deletion_proof_reason,
    b.error
FROM taxdome_export_batches AS b
ORDER BY b.started_at DESC
LIMIT :batch_limit
