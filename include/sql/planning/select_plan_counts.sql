-- What a run's plan writes to QuickBooks: operations and their total amount per kind and action.
-- Grain: one row per TaxDome kind and action of the run (amount is null for kinds without one).
SELECT
    p.taxdome_kind,
    p.action,
    COUNT(*) AS operations,
    SUM(p.amount_cents) AS amount_cents
FROM sync_plan AS p
WHERE p.run_id = :run_id
GROUP BY p.taxdome_kind, p.action
ORDER BY p.taxdome_kind, p.action
