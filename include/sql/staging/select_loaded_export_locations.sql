-- Export locations staged successfully, with the signature of their folder's files at the latest such load.
-- Grain: one row per location. The landing scan skips a folder whose files still have that signature (a
-- null signature: loaded before signatures were recorded, taken as unchanged).
SELECT
    b.export_location,
    b.folder_signature
FROM taxdome_export_batches AS b
WHERE b.status = :succeeded
  AND b.finished_at = (
    SELECT MAX(latest.finished_at)
    FROM taxdome_export_batches AS latest
    WHERE latest.export_location = b.export_location
      AND latest.status = :succeeded
)
