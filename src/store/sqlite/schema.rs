//! The database schema, as migrations.

/// Schema migrations, applied in order; the index + 1 is the schema version.
/// Never edit an applied entry: append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    jwk         TEXT NOT NULL,
    thumbprint  TEXT NOT NULL UNIQUE,
    contact     TEXT NOT NULL,
    tos_agreed  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE authzs (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    ident_type        TEXT NOT NULL,
    ident_value       TEXT NOT NULL,
    wildcard          INTEGER NOT NULL,
    state             TEXT NOT NULL,
    expires           INTEGER NOT NULL,
    token             TEXT NOT NULL,
    offered           TEXT NOT NULL,
    attempt_type      TEXT,
    attempt_state     TEXT,
    attempt_started   INTEGER,
    attempt_validated INTEGER,
    attempt_error     TEXT,
    attempt_records   TEXT,
    created_at        INTEGER NOT NULL
);
CREATE INDEX authzs_by_account ON authzs(account_id, ident_value);
CREATE INDEX authzs_processing ON authzs(attempt_state) WHERE attempt_state = 'processing';
CREATE TABLE orders (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    account_id        TEXT NOT NULL REFERENCES accounts(id),
    identifiers       TEXT NOT NULL,
    authz_ids         TEXT NOT NULL,
    expires           INTEGER NOT NULL,
    not_before        INTEGER,
    not_after         INTEGER,
    processing_until  INTEGER,
    error             TEXT,
    created_at        INTEGER NOT NULL
);
CREATE INDEX orders_by_account ON orders(account_id, seq);
CREATE TABLE certificates (
    id          TEXT PRIMARY KEY,
    serial      TEXT NOT NULL UNIQUE,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    order_id    TEXT UNIQUE REFERENCES orders(id),
    der         BLOB NOT NULL,
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    issued_at   INTEGER NOT NULL
);
"#,
    r#"
ALTER TABLE certificates ADD COLUMN revoked_at INTEGER;
ALTER TABLE certificates ADD COLUMN revocation_reason INTEGER;
"#,
    r#"
ALTER TABLE orders ADD COLUMN profile TEXT NOT NULL DEFAULT 'classic';
ALTER TABLE orders ADD COLUMN replaces TEXT;
ALTER TABLE certificates ADD COLUMN replaced_by TEXT;
CREATE INDEX certificates_revoked ON certificates(not_after) WHERE revoked_at IS NOT NULL;
CREATE TABLE eab_bindings (
    kid         TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL UNIQUE,
    bound_at    INTEGER NOT NULL
);
CREATE TABLE crl_numbers (
    issuer  TEXT PRIMARY KEY,
    number  INTEGER NOT NULL
);
"#,
    r#"
ALTER TABLE certificates ADD COLUMN common_name TEXT;
CREATE INDEX certificates_by_common_name ON certificates(common_name);
CREATE INDEX certificates_by_not_after ON certificates(not_after);
INSERT INTO accounts (id, status, jwk, thumbprint, contact, tos_agreed, created_at)
    VALUES ('service', 'valid', '{}', 'service:operator-api', '[]', 1, 0);
CREATE TABLE service_certs (
    serial      TEXT PRIMARY KEY REFERENCES certificates(serial),
    entity_id   TEXT NOT NULL,
    profile     TEXT NOT NULL,
    requester   TEXT NOT NULL,
    key_sealed  BLOB,
    auto_renew  INTEGER NOT NULL,
    renewed_to  TEXT,
    request_id  TEXT,
    created_at  INTEGER NOT NULL
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
    created_at  INTEGER NOT NULL,
    decided_by  TEXT,
    decided_at  INTEGER,
    reason      TEXT
);
CREATE INDEX service_requests_by_status ON service_requests(status, created_at);
CREATE INDEX service_requests_by_batch ON service_requests(batch_id);
CREATE TABLE service_batches (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    requester   TEXT NOT NULL,
    profile     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE service_recoveries (
    id          TEXT PRIMARY KEY,
    serial      TEXT NOT NULL REFERENCES service_certs(serial),
    requester   TEXT NOT NULL,
    status      TEXT NOT NULL,
    required    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    decided_by  TEXT,
    decided_at  INTEGER,
    reason      TEXT
);
CREATE INDEX service_recoveries_by_status ON service_recoveries(status, created_at);
CREATE TABLE service_recovery_approvals (
    recovery_id TEXT NOT NULL REFERENCES service_recoveries(id),
    agent       TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (recovery_id, agent)
);
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
"#,
    // Rate-limit buckets (src/store/ratelimit.rs): one row per limit and
    // key in use; the TAT in milliseconds since the Unix epoch. Name sets
    // of unexpired certificates (renewals are exempt from
    // certificates_per_domain).
    r#"
CREATE TABLE rate_buckets (
    k    TEXT PRIMARY KEY,
    tat  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX rate_buckets_by_tat ON rate_buckets(tat);
CREATE TABLE issued_name_sets (
    hash       TEXT PRIMARY KEY,
    not_after  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX issued_name_sets_by_expiry ON issued_name_sets(not_after);
"#,
    // State several instances would share (src/store/shared.rs): the
    // nonce secret and spent nonces, singleton job leases, renewalInfo set
    // by hand, download grants, and the revocation count that tells a
    // signed CRL stale (bumped by a trigger on every revocation). The
    // finalize lease gets its owner.
    r#"
CREATE TABLE shared_secrets (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE spent_nonces (
    nonce    BLOB PRIMARY KEY,
    expires  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX spent_nonces_by_expiry ON spent_nonces(expires);
CREATE TABLE job_leases (
    job    TEXT PRIMARY KEY,
    owner  TEXT NOT NULL,
    until  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE ari_overrides (
    serial  TEXT PRIMARY KEY,
    answer  TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE download_grants (
    digest           BLOB PRIMARY KEY,
    caller           TEXT NOT NULL,
    serial           TEXT NOT NULL,
    format           TEXT NOT NULL,
    password_sealed  BLOB,
    expires          INTEGER NOT NULL,
    recovery         TEXT
) WITHOUT ROWID;
CREATE INDEX download_grants_by_caller ON download_grants(caller, serial);
CREATE INDEX download_grants_by_expiry ON download_grants(expires);
CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value)
    SELECT 'revocations', count(*) FROM certificates WHERE revoked_at IS NOT NULL;
CREATE TRIGGER certificates_count_revocations
    AFTER UPDATE OF revoked_at ON certificates
    WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'revocations';
END;
ALTER TABLE orders ADD COLUMN processing_owner TEXT;
"#,
    // Console browser sessions (src/service/console/session.rs), shared so
    // that any instance serves any browser: keyed by the SHA-256 of the
    // cookie's id; pending downloads hold their token sealed under a key
    // only the id gives, oldest first by `seq`.
    r#"
CREATE TABLE console_sessions (
    digest        BLOB PRIMARY KEY,
    caller        TEXT NOT NULL,
    role          TEXT NOT NULL,
    csrf          TEXT NOT NULL,
    created       INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    flash         TEXT,
    flash_failed  INTEGER
) WITHOUT ROWID;
CREATE INDEX console_sessions_by_created ON console_sessions(created);
CREATE INDEX console_sessions_by_last_seen ON console_sessions(last_seen);
CREATE TABLE console_downloads (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    session       BLOB NOT NULL REFERENCES console_sessions(digest) ON DELETE CASCADE,
    serial        TEXT NOT NULL,
    format        TEXT NOT NULL,
    expires       INTEGER NOT NULL,
    recovery      INTEGER NOT NULL,
    token_sealed  BLOB NOT NULL,
    UNIQUE (session, serial)
);
"#,
    // The fleet's delegated OCSP responder per issuer: its certificate and
    // its key sealed under a key derived from the issuer's private key.
    r#"
CREATE TABLE ocsp_responders (
    issuer      TEXT PRIMARY KEY,
    cert        BLOB NOT NULL,
    key_sealed  BLOB NOT NULL,
    not_after   INTEGER NOT NULL
) WITHOUT ROWID;
"#,
];
