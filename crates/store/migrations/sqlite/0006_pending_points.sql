-- Points earned online that become usable only after the return window.
CREATE TABLE pending_points (
    order_id TEXT PRIMARY KEY,
    member_id TEXT NOT NULL,
    points INTEGER NOT NULL,
    available_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX pending_points_member ON pending_points(member_id);
CREATE INDEX pending_points_due ON pending_points(available_at);
