-- Members, One ID, consent, keys, audit, idempotency and the outbox.
-- Personal data lives only in *_enc columns, sealed with the member's data key.
-- Tables looked up by their key are WITHOUT ROWID: one B-tree descent per lookup.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

CREATE TABLE members (
    seq INTEGER PRIMARY KEY,            -- dense member number, for bitmaps later
    id TEXT NOT NULL UNIQUE,            -- opaque public id
    status TEXT NOT NULL,               -- active | merged | erased
    merged_into TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    gender TEXT,
    city TEXT,
    name_enc BLOB,
    birthday_enc BLOB,
    address_enc BLOB,
    attributes TEXT NOT NULL DEFAULT '{}',
    source_channel TEXT,
    source_store TEXT,
    absorbed INTEGER NOT NULL DEFAULT 0  -- members merged into this one (skips a query when 0)
);
CREATE INDEX members_merged_into ON members(merged_into) WHERE merged_into IS NOT NULL;

CREATE TABLE member_keys (member_id TEXT PRIMARY KEY, wrapped BLOB NOT NULL) WITHOUT ROWID;

CREATE TABLE identities (
    blind BLOB PRIMARY KEY,             -- HMAC of (type, app_id, value)
    member_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    app_id TEXT,
    value_enc BLOB NOT NULL,
    verified INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX identities_member ON identities(member_id);

CREATE TABLE consents (
    member_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    channel TEXT NOT NULL,
    granted INTEGER NOT NULL,
    decided_at INTEGER NOT NULL,
    source_channel TEXT,
    source_store TEXT,
    method TEXT NOT NULL,
    PRIMARY KEY (member_id, purpose, channel)
) WITHOUT ROWID;

CREATE TABLE consent_history (
    id INTEGER PRIMARY KEY,
    member_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    channel TEXT NOT NULL,
    granted INTEGER NOT NULL,
    decided_at INTEGER NOT NULL,
    source_channel TEXT,
    source_store TEXT,
    method TEXT NOT NULL,
    key_id TEXT
);
CREATE INDEX consent_history_member ON consent_history(member_id);

CREATE TABLE merges (
    from_id TEXT PRIMARY KEY,
    into_id TEXT NOT NULL,
    merged_at INTEGER NOT NULL,
    key_id TEXT,
    identities_moved INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX merges_into ON merges(into_id);

CREATE TABLE attribute_defs (name TEXT PRIMARY KEY, kind TEXT NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;

CREATE TABLE api_keys (
    hash TEXT PRIMARY KEY,              -- SHA-256 of the secret; the secret is never stored
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    store_id TEXT,
    channel TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) WITHOUT ROWID;

CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL
);

CREATE TABLE idempotency (
    scope BLOB PRIMARY KEY,             -- SHA-256 of (api key, method, path, Idempotency-Key)
    body_hash BLOB NOT NULL,
    state TEXT NOT NULL,                -- in_flight | done
    status INTEGER,
    response BLOB,                      -- sealed: responses can hold personal data
    member_id TEXT,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency(created_at);
CREATE INDEX idempotency_member ON idempotency(member_id) WHERE member_id IS NOT NULL;

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    topic TEXT NOT NULL,
    member_id TEXT,
    payload TEXT NOT NULL
);
