-- A reconciliation run's differences by class, unexplained first.
-- Grain: one row per class and explained flag.
SELECT
    e.difference_class,
    e.explained,
    COUNT(*) AS differences
FROM rpt_reconciliation__exceptions AS e
WHERE e.recon_run_id = :recon_run_id
GROUP BY e.difference_class, e.explained
ORDER BY e.explained, e.difference_class
