-- Tollgate schema, SQLite. Times are Unix milliseconds; money is integer micro-USD.
CREATE TABLE orgs (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    default_billing_mode TEXT,
    credit_micros        INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE workspaces (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    runtime      TEXT NOT NULL,
    model        TEXT,
    billing_mode TEXT,
    kind         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (org_id, name)
);

-- Secret values are AES-256-GCM ciphertexts; the associated data binds them to this row.
CREATE TABLE secrets (
    scope      TEXT NOT NULL CHECK (scope IN ('org', 'workspace')),
    owner_id   TEXT NOT NULL,
    name       TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (scope, owner_id, name)
);

-- Only SHA-256 hashes of workspace tokens; at most one active token per workspace.
CREATE TABLE workspace_tokens (
    token_hash   BLOB PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE UNIQUE INDEX workspace_tokens_one_active ON workspace_tokens (workspace_id) WHERE revoked_at IS NULL;

-- `seq` orders provisions exactly; two may share a millisecond.
CREATE TABLE provisions (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    request_model TEXT,
    resolution    TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX provisions_by_workspace ON provisions (workspace_id, seq);

CREATE TABLE admin_token (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    token_hash BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE credit_events (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    delta_micros  INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    balance_after INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);

-- One row per proxied request: reserved before forwarding, settled once.
CREATE TABLE ledger (
    request_id         TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL,
    workspace_id       TEXT NOT NULL,
    model              TEXT NOT NULL,
    status             TEXT NOT NULL,
    http_status        INTEGER,
    reserved_micros    INTEGER NOT NULL,
    cost_micros        INTEGER NOT NULL DEFAULT 0,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    settled_at         INTEGER
);
CREATE INDEX ledger_by_org_time ON ledger (org_id, created_at);
