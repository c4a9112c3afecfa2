-- Export locations that have been staged successfully at least once.
-- Grain: one row per location. The landing scan skips these, so each export folder loads once.
SELECT DISTINCT export_location
FROM taxdome_export_batches
WHERE status = :succeeded
