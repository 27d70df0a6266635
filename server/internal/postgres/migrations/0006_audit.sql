-- The audit trail of SPEC section 7: one row per change made through
-- AdminService or the manual-handling queue, written in the transaction of the
-- change (outcome 'ok'), or after a refused attempt (outcome 'refused' with its
-- errcode). Who: the identity of the caller's client certificate and the role
-- that allowed the call. args holds the non-secret arguments only (never a
-- password, a PIN key or a whole ID number).
CREATE TABLE audit_log (
    audit_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL,
    identity  text NOT NULL,
    role      text NOT NULL,
    method    text NOT NULL,
    target    text NOT NULL,
    args      jsonb NOT NULL DEFAULT '{}',
    outcome   text NOT NULL CHECK (outcome IN ('ok', 'refused')),
    errcode   integer NOT NULL DEFAULT 0,
    CHECK ((outcome = 'ok') = (errcode = 0))
);
CREATE INDEX audit_log_identity ON audit_log (identity, audit_id);
CREATE INDEX audit_log_target ON audit_log (target, audit_id);
CREATE INDEX audit_log_at ON audit_log (at);

-- Append-only: the database refuses UPDATE, DELETE and TRUNCATE, whoever asks.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only' USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
