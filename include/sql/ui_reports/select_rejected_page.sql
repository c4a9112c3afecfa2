-- One page of quarantined export rows matching the Quarantine page's filters (each filter NULL: any), newest
-- batch first, in file and line order, with the number of rows the filters match. The total comes from a
-- one-row count joined to the page, so a page past the end still says how many rows there are.
-- The reason pattern is a lower-case LIKE pattern with `\` as its escape character.
-- Grain: one row per quarantined row of the page (one row with NULL columns when the page is empty).
WITH matching AS (
    SELECT
        r._batch_id AS batch_id,
        b.export_name,
        b.started_at AS batch_started_at,
        r.source_file,
        r.source_line,
        r.reason,
        r.raw
    FROM stg_taxdome__rejected AS r
    JOIN taxdome_export_batches AS b ON b.batch_id = r._batch_id
    WHERE (CAST(:batch_id AS TEXT) IS NULL OR r._batch_id = :batch_id)
      AND (CAST(:source_file AS TEXT) IS NULL OR r.source_file = :source_file)
      AND (CAST(:reason_pattern AS TEXT) IS NULL OR LOWER(r.reason) LIKE :reason_pattern ESCAPE '\')
),
page AS (
    SELECT m.*
    FROM matching AS m
    ORDER BY m.batch_started_at DESC, m.batch_id, m.source_file, m.source_line
    LIMIT :limit OFFSET :offset
)
SELECT
    t.total,
    p.batch_id,
    p.export_name,
    p.source_file,
    p.source_line,
    p.reason,
    p.raw
FROM (SELECT COUNT(*) AS total FROM matching) AS t
LEFT JOIN page AS p ON 1 = 1
ORDER BY p.batch_started_at DESC, p.batch_id, p.source_file, p.source_line
