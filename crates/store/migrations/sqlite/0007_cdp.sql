-- The customer data platform: behaviour events, stitched anonymous ids, tags, segments,
-- lifecycle stages and ingestion counts for data quality.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,    -- Segment messageId: a resent message is stored once
    at INTEGER NOT NULL,                -- when it happened, corrected for clock skew
    received_at INTEGER NOT NULL,
    kind TEXT NOT NULL,                 -- track | identify | page | screen | alias | group
    name TEXT NOT NULL,                 -- normalised event name
    member_id TEXT,                     -- set once the sender is known
    user_key BLOB,                      -- blind index of the userId (an external_id identity)
    anon_key BLOB,                      -- blind index of the anonymousId
    source TEXT NOT NULL,               -- the API key that sent it
    channel TEXT,
    store_id TEXT,
    body TEXT NOT NULL,                 -- properties and context, personal data removed
    traits_enc BLOB                     -- identify traits, sealed
);
CREATE INDEX events_member ON events(member_id, at) WHERE member_id IS NOT NULL;
CREATE INDEX events_unknown_user ON events(user_key) WHERE member_id IS NULL AND user_key IS NOT NULL;
CREATE INDEX events_unknown_anon ON events(anon_key) WHERE member_id IS NULL AND anon_key IS NOT NULL;

-- anonymousId → member, learnt from identify and alias messages.
CREATE TABLE stitches (
    anon_key BLOB PRIMARY KEY,
    member_id TEXT NOT NULL,
    verified INTEGER NOT NULL,          -- 1 when a server-side channel key asserted it
    at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX stitches_member ON stitches(member_id);

CREATE TABLE tags (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,                 -- manual | rule
    rule TEXT,                          -- JSON segment rule, for rule tags
    description TEXT,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE member_tags (
    member_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (member_id, tag)
) WITHOUT ROWID;
CREATE INDEX member_tags_tag ON member_tags(tag);

CREATE TABLE segments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    rule TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE segment_sizes (
    segment_id TEXT NOT NULL,
    day INTEGER NOT NULL,               -- tenant day number
    count INTEGER NOT NULL,
    PRIMARY KEY (segment_id, day)
) WITHOUT ROWID;

CREATE TABLE member_lifecycle (
    member_id TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    since INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE lifecycle_transitions (
    id INTEGER PRIMARY KEY,
    member_id TEXT NOT NULL,
    from_stage TEXT,
    to_stage TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX lifecycle_transitions_member ON lifecycle_transitions(member_id, id);

-- Accepted and rejected messages per day, source and reason, with the summed arrival lag.
CREATE TABLE ingest_stats (
    day INTEGER NOT NULL,
    source TEXT NOT NULL,
    outcome TEXT NOT NULL,              -- accepted | duplicate | a rejection reason
    count INTEGER NOT NULL,
    lag_ms_sum INTEGER NOT NULL,
    lag_ms_max INTEGER NOT NULL,
    PRIMARY KEY (day, source, outcome)
) WITHOUT ROWID;
