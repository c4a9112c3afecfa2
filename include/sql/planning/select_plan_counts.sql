-- What a run's plan writes to QuickBooks: operations and their total amount per kind and action, as the plan
-- recorded them (sync_plan_counts: sync_plan counted when it was written).
-- Grain: one row per TaxDome kind and action of the run (amount is null for kinds without one).
SELECT
    c.taxdome_kind,
    c.action,
    c.operations,
    c.amount_cents
FROM sync_plan_counts AS c
WHERE c.run_id = :run_id
ORDER BY c.taxdome_kind, c.action
