-- Returns anywhere: what came back, what was refunded, what happened to points.
ALTER TABLE order_lines ADD COLUMN returned_qty BIGINT NOT NULL DEFAULT 0;

CREATE TABLE returns (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    store_id TEXT,                      -- where the goods came back (NULL: by post)
    location_id TEXT,
    refund_fen BIGINT NOT NULL,        -- after any deduction for spent points
    deduction_fen BIGINT NOT NULL,
    points_taken BIGINT NOT NULL,
    points_given BIGINT NOT NULL,
    shortfall_points BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX returns_order ON returns(order_id);

CREATE TABLE return_lines (
    return_id TEXT NOT NULL,
    line_no BIGINT NOT NULL,
    qty BIGINT NOT NULL,
    refund_fen BIGINT NOT NULL,
    points_taken BIGINT NOT NULL,
    points_given BIGINT NOT NULL,
    PRIMARY KEY (return_id, line_no)
);
