-- How a sync run's data-quality checks went.
-- Grain: one row.
SELECT
    COUNT(*) AS checks,
    SUM(CASE WHEN NOT d.success THEN 1 ELSE 0 END) AS failed,
    SUM(CASE WHEN NOT d.success AND d.severity = 'critical' THEN 1 ELSE 0 END) AS critical_failed
FROM dq_results AS d
WHERE d.run_id = :run_id
