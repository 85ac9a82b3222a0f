-- Returns anywhere: what came back, what was refunded, what happened to points.
ALTER TABLE order_lines ADD COLUMN returned_qty INTEGER NOT NULL DEFAULT 0;

CREATE TABLE returns (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    store_id TEXT,                      -- where the goods came back (NULL: by post)
    location_id TEXT,
    refund_fen INTEGER NOT NULL,        -- after any deduction for spent points
    deduction_fen INTEGER NOT NULL,
    points_taken INTEGER NOT NULL,
    points_given INTEGER NOT NULL,
    shortfall_points INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX returns_order ON returns(order_id);

CREATE TABLE return_lines (
    return_id TEXT NOT NULL,
    line_no INTEGER NOT NULL,
    qty INTEGER NOT NULL,
    refund_fen INTEGER NOT NULL,
    points_taken INTEGER NOT NULL,
    points_given INTEGER NOT NULL,
    PRIMARY KEY (return_id, line_no)
) WITHOUT ROWID;
