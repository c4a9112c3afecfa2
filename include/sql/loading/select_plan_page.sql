-- The next page of a run's planned operations in execution order (keyset pagination on seq, so no cursor
-- stays open while the loader writes).
-- Grain: one row per planned operation.
SELECT
    p.seq,
    p.taxdome_kind,
    p.taxdome_id,
    p.qbo_entity,
    p.action,
    p.payload,
    p.payload_hash,
    p.reason
FROM sync_plan AS p
WHERE p.run_id = :run_id
  AND p.seq > :after_seq
ORDER BY p.seq
LIMIT :page_size
