-- A reconciliation run's unexplained differences by class: how many, and their amounts added up regardless
-- of sign (a difference without an amount, e.g. a wrong customer, adds nothing).
-- Grain: one row per unexplained class.
SELECT
    e.difference_class,
    COUNT(*) AS differences,
    COALESCE(SUM(ABS(e.difference_cents)), 0) AS amount_cents
FROM rpt_reconciliation__exceptions AS e
WHERE e.recon_run_id = :recon_run_id AND NOT e.explained
GROUP BY e.difference_class
ORDER BY e.difference_class
