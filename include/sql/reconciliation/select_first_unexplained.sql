-- The first unexplained differences of a reconciliation run, in the report's order.
-- Grain: one row per difference; at most `limit` rows.
SELECT
    e.difference_class,
    e.object_kind,
    e.taxdome_id,
    e.measure,
    e.difference_cents,
    e.detail
FROM rpt_reconciliation__exceptions AS e
WHERE e.recon_run_id = :recon_run_id
  AND NOT e.explained
ORDER BY e.seq
LIMIT :limit
