-- One page of a reconciliation run's exceptions in the reconciliation's order (seq), of one difference class
-- and explained or not (each filter NULL: any), with the number of exceptions the filters match.
-- Grain: one row per exception of the page (one row with NULL columns when the page is empty).
WITH matching AS (
    SELECT e.*
    FROM rpt_reconciliation__exceptions AS e
    WHERE e.recon_run_id = :recon_run_id
      AND (CAST(:difference_class AS TEXT) IS NULL OR e.difference_class = :difference_class)
      AND (CAST(:explained AS BOOLEAN) IS NULL OR e.explained = CAST(:explained AS BOOLEAN))
),
page AS (
    SELECT m.*
    FROM matching AS m
    ORDER BY m.seq
    LIMIT :limit OFFSET :offset
)
SELECT
    t.total,
    p.seq,
    p.difference_class,
    p.explained,
    p.object_kind,
    p.taxdome_id,
    p.qbo_entity,
    p.qbo_id,
    p.measure,
    p.taxdome_cents,
    p.qbo_cents,
    p.difference_cents,
    p.detail,
    p.qbo_link
FROM (SELECT COUNT(*) AS total FROM matching) AS t
LEFT JOIN page AS p ON 1 = 1
ORDER BY p.seq
