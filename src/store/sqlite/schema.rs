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
];
