//! The PostgreSQL schema, as migrations. The tables mirror SQLite's
//! (src/store/sqlite/schema.rs) with PostgreSQL's types: BIGINT for times
//! (milliseconds or seconds, as the model keeps them) and counters, BOOLEAN
//! for flags, BYTEA for DER and sealed keys, TEXT for identifiers and JSON.
//! The versions are this backend's own; the index + 1 is the version.
//! Never edit an applied entry: append a new one.

pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    jwk         TEXT NOT NULL,
    thumbprint  TEXT NOT NULL UNIQUE,
    contact     TEXT NOT NULL,
    tos_agreed  BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE authzs (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    ident_type        TEXT NOT NULL,
    ident_value       TEXT NOT NULL,
    wildcard          BOOLEAN NOT NULL,
    state             TEXT NOT NULL,
    expires           BIGINT NOT NULL,
    token             TEXT NOT NULL,
    offered           TEXT NOT NULL,
    attempt_type      TEXT,
    attempt_state     TEXT,
    attempt_started   BIGINT,
    attempt_validated BIGINT,
    attempt_error     TEXT,
    attempt_records   TEXT,
    created_at        BIGINT NOT NULL
);
CREATE INDEX authzs_by_account ON authzs(account_id, ident_value);
CREATE INDEX authzs_processing ON authzs(attempt_state) WHERE attempt_state = 'processing';
CREATE TABLE orders (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                TEXT NOT NULL UNIQUE,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    identifiers       TEXT NOT NULL,
    authz_ids         TEXT NOT NULL,
    expires           BIGINT NOT NULL,
    not_before        BIGINT,
    not_after         BIGINT,
    processing_until  BIGINT,
    error             TEXT,
    created_at        BIGINT NOT NULL,
    profile           TEXT NOT NULL DEFAULT 'classic',
    replaces          TEXT
);
CREATE INDEX orders_by_account ON orders(account_id, seq);
CREATE TABLE certificates (
    id                 TEXT PRIMARY KEY,
    serial             TEXT NOT NULL UNIQUE,
    account_id         TEXT NOT NULL REFERENCES accounts(id),
    order_id           TEXT UNIQUE REFERENCES orders(id),
    der                BYTEA NOT NULL,
    not_before         BIGINT NOT NULL,
    not_after          BIGINT NOT NULL,
    issued_at          BIGINT NOT NULL,
    revoked_at         BIGINT,
    revocation_reason  BIGINT,
    replaced_by        TEXT,
    common_name        TEXT
);
CREATE INDEX certificates_revoked ON certificates(not_after) WHERE revoked_at IS NOT NULL;
CREATE INDEX certificates_by_common_name ON certificates(common_name);
CREATE INDEX certificates_by_not_after ON certificates(not_after);
CREATE TABLE eab_bindings (
    kid         TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL UNIQUE,
    bound_at    BIGINT NOT NULL
);
CREATE TABLE crl_numbers (
    issuer  TEXT PRIMARY KEY,
    number  BIGINT NOT NULL
);
INSERT INTO accounts (id, status, jwk, thumbprint, contact, tos_agreed, created_at)
    VALUES ('service', 'valid', '{}', 'service:operator-api', '[]', TRUE, 0);
CREATE TABLE service_certs (
    serial      TEXT PRIMARY KEY REFERENCES certificates(serial),
    entity_id   TEXT NOT NULL,
    profile     TEXT NOT NULL,
    requester   TEXT NOT NULL,
    key_sealed  BYTEA,
    auto_renew  BOOLEAN NOT NULL,
    renewed_to  TEXT,
    request_id  TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX service_certs_by_entity ON service_certs(entity_id);
CREATE INDEX service_certs_by_requester ON service_certs(requester);
CREATE TABLE service_requests (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    requester   TEXT NOT NULL,
    profile     TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    params      TEXT NOT NULL,
    batch_id    TEXT,
    serial      TEXT,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    decided_by  TEXT,
    decided_at  BIGINT,
    reason      TEXT
);
CREATE INDEX service_requests_by_status ON service_requests(status, created_at);
CREATE INDEX service_requests_by_batch ON service_requests(batch_id);
CREATE TABLE service_batches (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    requester   TEXT NOT NULL,
    profile     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE service_recoveries (
    id          TEXT PRIMARY KEY,
    serial      TEXT NOT NULL REFERENCES service_certs(serial),
    requester   TEXT NOT NULL,
    status      TEXT NOT NULL,
    required    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    decided_by  TEXT,
    decided_at  BIGINT,
    reason      TEXT
);
CREATE INDEX service_recoveries_by_status ON service_recoveries(status, created_at);
CREATE TABLE service_recovery_approvals (
    recovery_id TEXT NOT NULL REFERENCES service_recoveries(id),
    agent       TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (recovery_id, agent)
);
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE TABLE rate_buckets (
    k    TEXT PRIMARY KEY,
    tat  BIGINT NOT NULL
);
CREATE INDEX rate_buckets_by_tat ON rate_buckets(tat);
CREATE TABLE issued_name_sets (
    hash       TEXT PRIMARY KEY,
    not_after  BIGINT NOT NULL
);
CREATE INDEX issued_name_sets_by_expiry ON issued_name_sets(not_after);
"#,
    // State the instances share (src/store/shared.rs): the nonce secret
    // and spent nonces, singleton job leases, renewalInfo set by hand,
    // download grants, and the revocation count that tells a signed CRL
    // stale (bumped by a trigger on every revocation, whichever instance
    // made it). The finalize lease gets its owner.
    r#"
CREATE TABLE shared_secrets (
    name   TEXT PRIMARY KEY,
    value  BYTEA NOT NULL
);
CREATE TABLE spent_nonces (
    nonce    BYTEA PRIMARY KEY,
    expires  BIGINT NOT NULL
);
CREATE INDEX spent_nonces_by_expiry ON spent_nonces(expires);
CREATE TABLE job_leases (
    job    TEXT PRIMARY KEY,
    owner  TEXT NOT NULL,
    until  BIGINT NOT NULL
);
CREATE TABLE ari_overrides (
    serial  TEXT PRIMARY KEY,
    answer  TEXT NOT NULL
);
CREATE TABLE download_grants (
    digest           BYTEA PRIMARY KEY,
    caller           TEXT NOT NULL,
    serial           TEXT NOT NULL,
    format           TEXT NOT NULL,
    password_sealed  BYTEA,
    expires          BIGINT NOT NULL,
    recovery         TEXT
);
CREATE INDEX download_grants_by_caller ON download_grants(caller, serial);
CREATE INDEX download_grants_by_expiry ON download_grants(expires);
CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  BIGINT NOT NULL
);
INSERT INTO counters (name, value)
    SELECT 'revocations', count(*) FROM certificates WHERE revoked_at IS NOT NULL;
CREATE FUNCTION acme_ca_count_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'revocations';
    RETURN NULL;
END
$$;
CREATE TRIGGER certificates_count_revocations
    AFTER UPDATE OF revoked_at ON certificates
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION acme_ca_count_revocation();
ALTER TABLE orders ADD COLUMN processing_owner TEXT;
"#,
    // Console browser sessions (src/service/console/session.rs), shared so
    // that any instance serves any browser: keyed by the SHA-256 of the
    // cookie's id; pending downloads hold their token sealed under a key
    // only the id gives, oldest first by `seq`.
    r#"
CREATE TABLE console_sessions (
    digest        BYTEA PRIMARY KEY,
    caller        TEXT NOT NULL,
    role          TEXT NOT NULL,
    csrf          TEXT NOT NULL,
    created       BIGINT NOT NULL,
    last_seen     BIGINT NOT NULL,
    flash         TEXT,
    flash_failed  BOOLEAN
);
CREATE INDEX console_sessions_by_created ON console_sessions(created);
CREATE INDEX console_sessions_by_last_seen ON console_sessions(last_seen);
CREATE TABLE console_downloads (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session       BYTEA NOT NULL REFERENCES console_sessions(digest) ON DELETE CASCADE,
    serial        TEXT NOT NULL,
    format        TEXT NOT NULL,
    expires       BIGINT NOT NULL,
    recovery      BOOLEAN NOT NULL,
    token_sealed  BYTEA NOT NULL,
    UNIQUE (session, serial)
);
"#,
    // 4: whether the order has its certificate, on the order's own row, so
    // a claim decides in one UPDATE: a claim that waited for the commit of
    // store_certificate re-reads the row it updates (not other tables).
    r#"
ALTER TABLE orders ADD COLUMN certified BOOLEAN NOT NULL DEFAULT false;
UPDATE orders SET certified = true
    WHERE id IN (SELECT order_id FROM certificates WHERE order_id IS NOT NULL);
"#,
    // 5: the fleet's delegated OCSP responder per issuer: its certificate
    // and its key sealed under a key derived from the issuer's private key.
    r#"
CREATE TABLE ocsp_responders (
    issuer      TEXT PRIMARY KEY,
    cert        BYTEA NOT NULL,
    key_sealed  BYTEA NOT NULL,
    not_after   BIGINT NOT NULL
);
"#,
];
