-- The catalogue and its price list, loyalty programme versions, orders and the points ledger.
CREATE TABLE products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE prices (
    sku TEXT NOT NULL,
    effective_from INTEGER NOT NULL,
    price_fen INTEGER NOT NULL,
    channel_prices TEXT NOT NULL,       -- JSON {channel: fen}
    PRIMARY KEY (sku, effective_from)
) WITHOUT ROWID;

CREATE TABLE loyalty_programs (
    version INTEGER PRIMARY KEY,
    effective_from INTEGER NOT NULL,
    rules TEXT NOT NULL,                -- JSON, see domain::loyalty::Program
    created_at INTEGER NOT NULL
);
CREATE INDEX loyalty_programs_from ON loyalty_programs(effective_from);

CREATE TABLE orders (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    store_id TEXT,
    order_ref TEXT NOT NULL,
    member_id TEXT,
    associate_id TEXT,
    status TEXT NOT NULL,               -- completed (till) | placed (online) | cancelled
    placed_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    program_version INTEGER NOT NULL,
    subtotal_fen INTEGER NOT NULL,
    discount_fen INTEGER NOT NULL,
    points_redeemed INTEGER NOT NULL,
    points_value_fen INTEGER NOT NULL,
    payable_fen INTEGER NOT NULL,
    points_earned INTEGER NOT NULL
);
CREATE UNIQUE INDEX orders_ref ON orders(channel, (COALESCE(store_id, '')), order_ref);
CREATE INDEX orders_member ON orders(member_id, placed_at);

CREATE TABLE order_lines (
    order_id TEXT NOT NULL,
    line_no INTEGER NOT NULL,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    qty INTEGER NOT NULL,
    unit_price_fen INTEGER NOT NULL,
    catalogue_price_fen INTEGER NOT NULL,
    override_reason TEXT,
    subtotal_fen INTEGER NOT NULL,
    discount_fen INTEGER NOT NULL,
    points_value_fen INTEGER NOT NULL,
    paid_fen INTEGER NOT NULL,
    points_earned INTEGER NOT NULL,
    PRIMARY KEY (order_id, line_no)
) WITHOUT ROWID;

-- Append-only: the balance is the sum of a member's entries and never negative.
CREATE TABLE points_ledger (
    id INTEGER PRIMARY KEY,
    member_id TEXT NOT NULL,
    delta INTEGER NOT NULL,
    reason TEXT NOT NULL,               -- earn | redeem | cancel_* | return_* | adjustment | expire
    ref_type TEXT NOT NULL,             -- order | adjustment
    ref_id TEXT NOT NULL,
    note TEXT,
    at INTEGER NOT NULL,
    -- Every credit is a lot: what is left of it, and when that expires (NULL: never).
    -- Debits consume the lots that expire first.
    remaining INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER
);
CREATE INDEX points_ledger_member ON points_ledger(member_id, id);
CREATE INDEX points_ledger_lots ON points_ledger(expires_at) WHERE remaining > 0;
