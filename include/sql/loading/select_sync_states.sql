-- The sync state of some TaxDome objects of one kind in a company: the loader reads the state of the
-- operations it is about to decide on (and of the objects they refer to) a window at a time, never the
-- company's whole state. taxdome_ids is a list (an expanding parameter).
-- Grain: one row per TaxDome object of the kind that has a state in the company.
SELECT
    s.taxdome_id,
    s.qbo_entity,
    s.qbo_id,
    s.sync_token,
    s.payload_hash,
    s.status,
    s.pending_action,
    s.last_request_id
FROM qbo_sync_state AS s
WHERE
    s.realm_id = :realm_id
    AND s.taxdome_kind = :taxdome_kind
    AND s.taxdome_id IN :taxdome_ids
