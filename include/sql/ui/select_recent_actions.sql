-- The most recent actions taken in the Airflow UI, newest first, with who took them.
-- Grain: one row per action, at most action_limit.
SELECT
    a.taken_at,
    a.user_name,
    a.action,
    a.target,
    a.outcome,
    a.finished_at
FROM ui_actions AS a
ORDER BY a.taken_at DESC, a.id DESC
LIMIT :action_limit
