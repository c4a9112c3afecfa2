-- Why rows of one export were quarantined, most frequent first (a reason names its file and values).
-- Grain: one row per file and reason.
SELECT
    r.source_file,
    r.reason,
    COUNT(*) AS row_count,
    MIN(r.source_line) AS first_line
FROM stg_taxdome__rejected AS r
WHERE r.export_fingerprint = :export_fingerprint
GROUP BY r.source_file, r.reason
ORDER BY row_count DESC, r.source_file, first_line
LIMIT :reason_limit
