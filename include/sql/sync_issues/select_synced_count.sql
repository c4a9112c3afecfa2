-- How many TaxDome objects are in the QuickBooks company now (the base of the planner's mass-delete guard).
-- Grain: one row.
SELECT COUNT(*) AS objects
FROM qbo_sync_state AS s
WHERE s.realm_id = :realm_id AND s.status = 'synced'
