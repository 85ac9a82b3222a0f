-- One pool of stock: locations, stock per (SKU, location) with its reservations, the last
-- sequence number applied per (source, location, SKU), the journal of movements, and the
-- reservations of online orders.
CREATE TABLE locations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,                 -- store | regional_warehouse | central_warehouse
    lat REAL NOT NULL,
    lng REAL NOT NULL,
    pickup INTEGER NOT NULL,
    ship_from_store INTEGER NOT NULL,
    delivery_radius_km REAL NOT NULL,
    safety_stock INTEGER NOT NULL,
    opening_hours TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Keyed by SKU first: availability reads one SKU across every location.
CREATE TABLE stock (
    sku TEXT NOT NULL,
    location_id TEXT NOT NULL,
    on_hand INTEGER NOT NULL,
    reserved INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (sku, location_id)
) WITHOUT ROWID;
CREATE INDEX stock_negative ON stock(location_id) WHERE on_hand < 0;

CREATE TABLE stock_seqs (
    source TEXT NOT NULL,
    location_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (source, location_id, sku)
) WITHOUT ROWID;

CREATE TABLE stock_movements (
    id INTEGER PRIMARY KEY,
    location_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    delta INTEGER NOT NULL,
    on_hand_after INTEGER NOT NULL,
    reason TEXT NOT NULL,               -- sale | return | damage | transfer | count | erp_sync
    ref_id TEXT,
    at INTEGER NOT NULL
);
CREATE INDEX stock_movements_sku ON stock_movements(sku, location_id, id);

CREATE TABLE reservations (
    id INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    location_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    qty INTEGER NOT NULL,
    status TEXT NOT NULL,               -- reserved | picked | fulfilled | released
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX reservations_order ON reservations(order_id);

ALTER TABLE orders ADD COLUMN fulfillment TEXT;
ALTER TABLE orders ADD COLUMN route_reason TEXT;
ALTER TABLE orders ADD COLUMN pickup_code TEXT;           -- shown to the shopper, checked at hand-over

-- Transfers between locations (调货): requested, shipped (in transit, available nowhere), received.
CREATE TABLE transfers (
    id TEXT PRIMARY KEY,
    from_location TEXT NOT NULL,
    to_location TEXT NOT NULL,
    status TEXT NOT NULL,               -- requested | shipped | received | cancelled
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE transfer_lines (
    transfer_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    qty INTEGER NOT NULL,
    PRIMARY KEY (transfer_id, sku)
) WITHOUT ROWID;

-- Back-in-stock subscriptions (缺货预约): a member waits for a SKU, anywhere or at one store.
CREATE TABLE stock_subscriptions (
    id INTEGER PRIMARY KEY,
    member_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    location_id TEXT,
    created_at INTEGER NOT NULL,
    notified_at INTEGER
);
CREATE INDEX stock_subscriptions_waiting ON stock_subscriptions(sku) WHERE notified_at IS NULL;
CREATE INDEX stock_subscriptions_member ON stock_subscriptions(member_id);

-- Webhooks: subscriptions per event type, and one delivery per (subscription, outbox row),
-- created from the outbox in the same transaction that moves the cursor, so that a restart
-- never loses or repeats one.
CREATE TABLE webhook_subscriptions (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,          -- JSON list; ["*"] for every type
    secret TEXT NOT NULL,               -- whsec_…, the Standard Webhooks signing secret
    created_at INTEGER NOT NULL,
    active INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    outbox_id INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,               -- pending | delivered | dead
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries(subscription_id, id);
