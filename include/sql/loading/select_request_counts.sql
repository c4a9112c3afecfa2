-- What a run sent to QBO: write requests by entity, operation and HTTP status (null: no answer came back).
-- Grain: one row per entity, operation and status.
SELECT
    q.entity,
    q.operation,
    q.http_status,
    COUNT(*) AS items
FROM qbo_requests AS q
WHERE q.run_id = :run_id
GROUP BY q.entity, q.operation, q.http_status
ORDER BY q.entity, q.operation, q.http_status
