-- Synced objects of a run that have a QBO id but no web-app link yet (the loader adds the links).
-- Grain: one row per TaxDome object.
SELECT
    s.taxdome_kind,
    s.taxdome_id,
    s.qbo_entity,
    s.qbo_id
FROM sync_object_status AS s
WHERE s.run_id = :run_id
  AND s.status = 'synced'
  AND s.qbo_id IS NOT NULL
  AND s.qbo_link IS NULL
