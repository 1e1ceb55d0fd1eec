-- Tollgate schema, Postgres. Times are Unix milliseconds; money is integer micro-USD.
CREATE TABLE orgs (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    default_billing_mode TEXT,
    credit_micros        BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);

CREATE TABLE workspaces (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    runtime      TEXT NOT NULL,
    model        TEXT,
    billing_mode TEXT,
    kind         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

-- Secret values are AES-256-GCM ciphertexts; the associated data binds them to this row.
CREATE TABLE secrets (
    scope      TEXT NOT NULL CHECK (scope IN ('org', 'workspace')),
    owner_id   TEXT NOT NULL,
    name       TEXT NOT NULL,
    nonce      BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (scope, owner_id, name)
);

-- Only SHA-256 hashes of workspace tokens; at most one active token per workspace.
CREATE TABLE workspace_tokens (
    token_hash   BYTEA PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE UNIQUE INDEX workspace_tokens_one_active ON workspace_tokens (workspace_id) WHERE revoked_at IS NULL;

-- `seq` orders provisions exactly; two may share a millisecond.
CREATE TABLE provisions (
    seq           BIGSERIAL PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    request_model TEXT,
    resolution    TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX provisions_by_workspace ON provisions (workspace_id, seq);

CREATE TABLE admin_token (
    id         SMALLINT PRIMARY KEY CHECK (id = 1),
    token_hash BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE credit_events (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    delta_micros  BIGINT NOT NULL,
    reason        TEXT NOT NULL,
    balance_after BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- One row per proxied request: reserved before forwarding, settled once.
CREATE TABLE ledger (
    request_id         TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL,
    workspace_id       TEXT NOT NULL,
    model              TEXT NOT NULL,
    status             TEXT NOT NULL,
    http_status        BIGINT,
    reserved_micros    BIGINT NOT NULL,
    cost_micros        BIGINT NOT NULL DEFAULT 0,
    input_tokens       BIGINT NOT NULL DEFAULT 0,
    output_tokens      BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens  BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    settled_at         BIGINT
);
CREATE INDEX ledger_by_org_time ON ledger (org_id, created_at);
