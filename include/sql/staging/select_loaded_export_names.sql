-- Names of the exports staged successfully: a load of an export older than one of them proves no deletion.
-- Grain: one row per name (ordered by the caller: the databases' collations differ).
SELECT DISTINCT export_name
FROM taxdome_export_batches
WHERE status = :succeeded
