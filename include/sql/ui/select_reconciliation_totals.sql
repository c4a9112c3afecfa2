-- A reconciliation run's totals over its whole period (no dimension), TaxDome beside QuickBooks, in cents.
-- Grain: one row per measure.
SELECT
    s.measure,
    s.taxdome_cents,
    s.qbo_cents,
    s.difference_cents
FROM rpt_reconciliation__summary AS s
WHERE s.recon_run_id = :recon_run_id AND s.period = 'total' AND s.dimension = ''
ORDER BY s.measure
