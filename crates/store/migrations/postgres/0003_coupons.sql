-- Coupon templates, coupons (codes) and the coupons redeemed in each order.
CREATE TABLE coupon_templates (
    id TEXT PRIMARY KEY,
    rules TEXT NOT NULL,                -- JSON, see domain::coupon::Template
    issued BIGINT NOT NULL DEFAULT 0,
    spent_fen BIGINT NOT NULL DEFAULT 0,
    budget_fen BIGINT,                  -- NULL: no budget, and then no running total either
    created_at BIGINT NOT NULL
);

CREATE TABLE coupons (
    code TEXT PRIMARY KEY,              -- at least 80 random bits
    template_id TEXT NOT NULL,
    member_id TEXT,                     -- NULL: an unassigned claim code
    status TEXT NOT NULL,               -- issued | redeemed
    valid_from BIGINT NOT NULL,
    valid_to BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    order_id TEXT,
    discount_fen BIGINT
);
CREATE INDEX coupons_member ON coupons(member_id, template_id);

CREATE TABLE order_coupons (
    order_id TEXT NOT NULL,
    code TEXT NOT NULL,
    discount_fen BIGINT NOT NULL,
    per_line TEXT NOT NULL,             -- JSON [fen per line]
    PRIMARY KEY (order_id, code)
);
