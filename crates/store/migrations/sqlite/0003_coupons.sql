-- Coupon templates, coupons (codes) and the coupons redeemed in each order.
CREATE TABLE coupon_templates (
    id TEXT PRIMARY KEY,
    rules TEXT NOT NULL,                -- JSON, see domain::coupon::Template
    issued INTEGER NOT NULL DEFAULT 0,
    spent_fen INTEGER NOT NULL DEFAULT 0,
    budget_fen INTEGER,                  -- NULL: no budget, and then no running total either
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE coupons (
    code TEXT PRIMARY KEY,              -- at least 80 random bits
    template_id TEXT NOT NULL,
    member_id TEXT,                     -- NULL: an unassigned claim code
    status TEXT NOT NULL,               -- issued | redeemed
    valid_from INTEGER NOT NULL,
    valid_to INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    order_id TEXT,
    discount_fen INTEGER
) WITHOUT ROWID;
CREATE INDEX coupons_member ON coupons(member_id, template_id);

CREATE TABLE order_coupons (
    order_id TEXT NOT NULL,
    code TEXT NOT NULL,
    discount_fen INTEGER NOT NULL,
    per_line TEXT NOT NULL,             -- JSON [fen per line]
    PRIMARY KEY (order_id, code)
) WITHOUT ROWID;
