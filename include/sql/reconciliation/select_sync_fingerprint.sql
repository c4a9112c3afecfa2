-- What a sync changes under a reconciliation of the company: the latest export staged, the latest plan that
-- will be loaded (a dry run or a plan without operation writes nothing) and the latest load. A comparison
-- whose fingerprint differs between its read-back and its verdict saw a sync stage, plan or load meanwhile.
-- Grain: one row.
SELECT
    (
        SELECT b.batch_id
        FROM taxdome_export_batches AS b
        WHERE b.status = 'succeeded'
        ORDER BY b.finished_at DESC, b.batch_id DESC
        LIMIT 1
    ) AS latest_batch_id,
    (
        SELECT MAX(r.planned_at)
        FROM sync_plan_runs AS r
        WHERE r.realm_id = :realm_id
          AND NOT r.dry_run
          AND r.operations > 0
    ) AS latest_planned_at,
    (
        SELECT MAX(r.loaded_at)
        FROM sync_plan_runs AS r
        WHERE r.realm_id = :realm_id
    ) AS latest_loaded_at
