-- A sync run's data-quality checks, failures first (critical before warnings), then by name; or the one
-- check named (none named: all). A run has tens of checks and each keeps its first failing ids only.
-- Grain: one row per check.
SELECT
    d.check_name,
    d.table_name,
    d.engine,
    d.severity,
    d.success,
    d.evaluated_rows,
    d.unexpected_count,
    d.observed,
    d.unexpected_ids,
    d.description,
    d.checked_at
FROM dq_results AS d
WHERE d.run_id = :run_id
  AND (CAST(:check_name AS TEXT) IS NULL OR d.check_name = :check_name)
ORDER BY
    CASE WHEN d.success THEN 1 ELSE 0 END,
    CASE WHEN d.severity = 'critical' THEN 0 ELSE 1 END,
    d.check_name
