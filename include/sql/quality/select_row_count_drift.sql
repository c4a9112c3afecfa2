-- Rows read per export file by the latest successful load and by the successful load before it.
-- Grain: one row per file either load read. previous_rows is null when there is no earlier load; a file the
-- latest load lacks read 0 rows. shrunk: the latest read more than `max_shrink_percent` % fewer rows
-- (integer arithmetic: exact for any count).
WITH recent_batches AS (
    SELECT
        b.batch_id,
        ROW_NUMBER() OVER (ORDER BY b.started_at DESC, b.batch_id DESC) AS recency
    FROM taxdome_export_batches AS b
    WHERE b.status = :succeeded
),
file_counts AS (
    SELECT
        f.source_file,
        MAX(CASE WHEN r.recency = 1 THEN f.rows_read END) AS latest_rows,
        MAX(CASE WHEN r.recency = 2 THEN f.rows_read END) AS previous_rows
    FROM taxdome_export_batch_files AS f
    JOIN recent_batches AS r ON r.batch_id = f.batch_id
    WHERE r.recency <= 2
    GROUP BY f.source_file
)
SELECT
    c.source_file,
    c.previous_rows,
    COALESCE(c.latest_rows, 0) AS latest_rows,
    CASE
        WHEN c.previous_rows IS NOT NULL
            AND COALESCE(c.latest_rows, 0) * 100 < c.previous_rows * (100 - :max_shrink_percent)
        THEN 1 ELSE 0
    END AS shrunk
FROM file_counts AS c
ORDER BY c.source_file
