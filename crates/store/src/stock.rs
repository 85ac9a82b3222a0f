//! Stock: locations, on hand and reserved per (SKU, location), ERP/WMS updates applied once
//! in sequence, the journal of movements, till sales, and the routing and reservation of
//! online orders in the order's own transaction (conditional updates, so that two orders can
//! never both take the last unit, on SQLite or PostgreSQL).

use crate::db::{DbError, Row, Tx};
use crate::{Result, vals};
use ronghe_domain::stock::{self, Allocation, Candidate, Change, Fulfillment, Location, LocationKind, Refused, Route};
use ronghe_domain::{Code, DomainError, Millis};
use std::collections::{BTreeMap, HashMap};

const LOCATION_COLUMNS: &str =
    "id, name, kind, lat, lng, pickup, ship_from_store, delivery_radius_km, safety_stock, opening_hours";

/// A location's columns (as [`location_row`] reads them) and its stock of one SKU.
const LEVELS: &str = "SELECT l.id, l.name, l.kind, l.lat, l.lng, l.pickup, l.ship_from_store, l.delivery_radius_km,
        l.safety_stock, l.opening_hours, s.on_hand, s.reserved
    FROM stock s JOIN locations l ON l.id = s.location_id";

fn location_row(r: &Row) -> Result<Location> {
    Ok(Location {
        id: r.string(0)?,
        name: r.string(1)?,
        kind: LocationKind::parse(&r.string(2)?).ok_or_else(|| DbError::Other("unknown location kind".into()))?,
        lat: r.f64(3)?,
        lng: r.f64(4)?,
        pickup: r.i64(5)? != 0,
        ship_from_store: r.i64(6)? != 0,
        delivery_radius_km: r.f64(7)?,
        safety_stock: r.i64(8)?,
        opening_hours: r.opt_string(9)?,
    })
}

/// Create or replace a location. Returns whether it is new.
pub fn put_location(tx: &mut dyn Tx, l: &Location, now: Millis) -> Result<bool> {
    let existed = tx.query_one("SELECT 1 FROM locations WHERE id = $1", vals![l.id.as_str()])?.is_some();
    tx.exec(
        "INSERT INTO locations (id, name, kind, lat, lng, pickup, ship_from_store, delivery_radius_km, safety_stock,
                                opening_hours, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, lat = excluded.lat,
            lng = excluded.lng, pickup = excluded.pickup, ship_from_store = excluded.ship_from_store,
            delivery_radius_km = excluded.delivery_radius_km, safety_stock = excluded.safety_stock,
            opening_hours = excluded.opening_hours, updated_at = excluded.updated_at",
        vals![
            l.id.as_str(),
            l.name.as_str(),
            l.kind.as_str(),
            l.lat,
            l.lng,
            l.pickup,
            l.ship_from_store,
            l.delivery_radius_km,
            l.safety_stock,
            l.opening_hours.clone(),
            now
        ],
    )?;
    // The widest delivery radius bounds which stores a delivery can come from (never shrinks,
    // which only makes the bound looser).
    let widest = tx
        .query_one("SELECT value FROM meta WHERE key = 'stock.max_radius_km'", &[])?
        .map(|r| r.string(0))
        .transpose()?
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    if l.delivery_radius_km > widest {
        tx.exec(
            "INSERT INTO meta (key, value) VALUES ('stock.max_radius_km', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vals![l.delivery_radius_km.to_string()],
        )?;
    }
    Ok(!existed)
}

pub fn locations(tx: &mut dyn Tx) -> Result<Vec<Location>> {
    tx.query(&format!("SELECT {LOCATION_COLUMNS} FROM locations ORDER BY id"), &[])?.iter().map(location_row).collect()
}

pub fn location(tx: &mut dyn Tx, id: &str) -> Result<Option<Location>> {
    tx.query_one(&format!("SELECT {LOCATION_COLUMNS} FROM locations WHERE id = $1"), vals![id])?
        .map(|r| location_row(&r))
        .transpose()
}

/// One item of `PUT /v1/inventory`.
#[derive(Debug, Clone)]
pub struct Item {
    pub location_id: String,
    pub sku: String,
    pub change: Change,
    pub seq: Option<i64>,
}

/// What became of an item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ItemResult {
    /// `applied`, `stale` or `unknown_location`.
    pub status: &'static str,
    pub on_hand: Option<i64>,
    /// For a stale item: the last sequence number applied.
    pub last_seq: Option<i64>,
}

fn stock_row(tx: &mut dyn Tx, sku: &str, location_id: &str) -> Result<Option<(i64, i64)>> {
    let sql = format!("SELECT on_hand, reserved FROM stock WHERE sku = $1 AND location_id = $2{}", tx.for_update());
    tx.query_one(&sql, vals![sku, location_id])?.map(|r| Ok((r.i64(0)?, r.i64(1)?))).transpose()
}

/// Move on hand by `delta` (creating the row), journaled with its reason.
fn move_stock(
    tx: &mut dyn Tx,
    location_id: &str,
    sku: &str,
    delta: i64,
    reason: &str,
    ref_id: Option<&str>,
    now: Millis,
) -> Result<i64> {
    let after = match stock_row(tx, sku, location_id)? {
        Some((on_hand, _)) => {
            tx.exec(
                "UPDATE stock SET on_hand = on_hand + $3, updated_at = $4 WHERE sku = $1 AND location_id = $2",
                vals![sku, location_id, delta, now],
            )?;
            on_hand + delta
        }
        None => {
            tx.exec(
                "INSERT INTO stock (sku, location_id, on_hand, reserved, updated_at) VALUES ($1, $2, $3, 0, $4)",
                vals![sku, location_id, delta, now],
            )?;
            delta
        }
    };
    if delta != 0 {
        tx.exec(
            "INSERT INTO stock_movements (location_id, sku, delta, on_hand_after, reason, ref_id, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            vals![location_id, sku, delta, after, reason, ref_id, now],
        )?;
        crate::outbox::append(
            tx,
            "stock.changed",
            None,
            &serde_json::json!({"location_id": location_id, "sku": sku, "on_hand": after, "delta": delta, "reason": reason}),
            now,
        )?;
    }
    Ok(after)
}

/// Apply ERP/WMS items from `source`, each on its own: a result per item, in order.
pub fn update(tx: &mut dyn Tx, source: &str, items: &[Item], reason: &str, now: Millis) -> Result<Vec<ItemResult>> {
    let mut known: HashMap<String, bool> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let exists = match known.get(&it.location_id) {
            Some(e) => *e,
            None => {
                let e =
                    tx.query_one("SELECT 1 FROM locations WHERE id = $1", vals![it.location_id.as_str()])?.is_some();
                known.insert(it.location_id.clone(), e);
                e
            }
        };
        if !exists {
            out.push(ItemResult { status: "unknown_location", on_hand: None, last_seq: None });
            continue;
        }
        let seq_sql = format!(
            "SELECT seq FROM stock_seqs WHERE source = $1 AND location_id = $2 AND sku = $3{}",
            tx.for_update()
        );
        let last_seq = tx
            .query_one(&seq_sql, vals![source, it.location_id.as_str(), it.sku.as_str()])?
            .map(|r| r.i64(0))
            .transpose()?;
        let on_hand = stock_row(tx, &it.sku, &it.location_id)?.map_or(0, |(h, _)| h);
        match stock::apply(on_hand, last_seq, it.change, it.seq) {
            Err(Refused::Stale { last_seq }) => {
                out.push(ItemResult { status: "stale", on_hand: Some(on_hand), last_seq: Some(last_seq) })
            }
            Ok(new) => {
                let after = move_stock(tx, &it.location_id, &it.sku, new - on_hand, reason, Some(source), now)?;
                if let Some(seq) = it.seq {
                    tx.exec(
                        "INSERT INTO stock_seqs (source, location_id, sku, seq) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (source, location_id, sku) DO UPDATE SET seq = excluded.seq",
                        vals![source, it.location_id.as_str(), it.sku.as_str(), seq],
                    )?;
                }
                out.push(ItemResult { status: "applied", on_hand: Some(after), last_seq: None });
            }
        }
    }
    let mut skus: Vec<&str> = items.iter().map(|i| i.sku.as_str()).collect();
    skus.sort_unstable();
    skus.dedup();
    for sku in skus {
        notify_back_in_stock(tx, sku, now)?;
    }
    Ok(out)
}

/// A SKU at one location.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Level {
    pub location_id: String,
    pub on_hand: i64,
    pub reserved: i64,
    /// Available to promise online: on hand − reserved − the location's safety stock, ≥ 0.
    pub available: i64,
}

/// A SKU across the pool, per location (locations that never held it are left out).
pub fn levels(tx: &mut dyn Tx, sku: &str) -> Result<Vec<(Location, Level)>> {
    let rows = tx.query(&format!("{LEVELS} WHERE s.sku = $1 ORDER BY l.id"), vals![sku])?;
    rows.iter().map(level_row).collect()
}

fn level_row(r: &Row) -> Result<(Location, Level)> {
    let l = location_row(r)?;
    let (on_hand, reserved) = (r.i64(10)?, r.i64(11)?);
    let available = stock::available_to_promise(on_hand, reserved, l.safety_stock);
    let level = Level { location_id: l.id.clone(), on_hand, reserved, available };
    Ok((l, level))
}

/// [`levels`] for a delivery to a point: warehouses, and only the stores close enough that
/// their delivery radius could reach it (a box of the widest radius around the point) — a
/// SKU stocked by thousands of stores is not read whole for every order.
pub fn levels_for_delivery(tx: &mut dyn Tx, sku: &str, lat: f64, lng: f64) -> Result<Vec<(Location, Level)>> {
    let widest = tx
        .query_one("SELECT value FROM meta WHERE key = 'stock.max_radius_km'", &[])?
        .map(|r| r.string(0))
        .transpose()?
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    // One degree of latitude is 111.2 km; a degree of longitude shrinks with the latitude.
    let dlat = widest / 111.0 + 0.001;
    let dlng = widest / (111.0 * lat.to_radians().cos().abs().max(0.01)) + 0.001;
    let rows = tx.query(
        &format!(
            "{LEVELS} WHERE s.sku = $1 AND (l.kind <> 'store' OR (l.lat BETWEEN $2 AND $3 AND l.lng BETWEEN $4 AND $5))
             ORDER BY l.id"
        ),
        vals![sku, lat - dlat, lat + dlat, lng - dlng, lng + dlng],
    )?;
    rows.iter().map(level_row).collect()
}

/// The bulk path for large synthetic stock (benchmarks, first loads from an ERP export): rows
/// of (location, SKU, on hand) inserted as they are, no journal, no sequence numbers.
pub fn bulk_levels(tx: &mut dyn Tx, rows: &[(String, String, i64)], now: Millis) -> Result<()> {
    for (location_id, sku, on_hand) in rows {
        tx.exec(
            "INSERT INTO stock (sku, location_id, on_hand, reserved, updated_at) VALUES ($1, $2, $3, 0, $4)
             ON CONFLICT (sku, location_id) DO UPDATE SET on_hand = excluded.on_hand, updated_at = excluded.updated_at",
            vals![sku.as_str(), location_id.as_str(), *on_hand, now],
        )?;
    }
    Ok(())
}

/// One entry of the stock journal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Movement {
    pub id: i64,
    pub location_id: String,
    pub delta: i64,
    pub on_hand_after: i64,
    pub reason: String,
    pub ref_id: Option<String>,
    pub at: Millis,
}

/// The journal of a SKU (at one location or all), newest first.
pub fn movements(tx: &mut dyn Tx, sku: &str, location_id: Option<&str>, limit: i64) -> Result<Vec<Movement>> {
    tx.query(
        "SELECT id, location_id, delta, on_hand_after, reason, ref_id, at FROM stock_movements
         WHERE sku = $1 AND ($2 = '' OR location_id = $2) ORDER BY id DESC LIMIT $3",
        vals![sku, location_id.unwrap_or(""), limit],
    )?
    .iter()
    .map(|r| {
        Ok(Movement {
            id: r.i64(0)?,
            location_id: r.string(1)?,
            delta: r.i64(2)?,
            on_hand_after: r.i64(3)?,
            reason: r.string(4)?,
            ref_id: r.opt_string(5)?,
            at: r.i64(6)?,
        })
    })
    .collect()
}

/// Sell at a till of a known location (the caller checks): on hand goes down at once and is
/// never refused; a negative result is left for the next stock-take (`stock_negative` index).
pub fn sell_at_till(
    tx: &mut dyn Tx,
    location_id: &str,
    sku: &str,
    qty: i64,
    order_id: &str,
    now: Millis,
) -> Result<()> {
    move_stock(tx, location_id, sku, -qty, "sale", Some(order_id), now)?;
    Ok(())
}

/// Route an online order and reserve its stock, in the caller's transaction. The reservation
/// is a conditional update per allocation: if another order took the units in between (on
/// PostgreSQL), it fails and the whole order is refused.
pub fn route_and_reserve(
    tx: &mut dyn Tx,
    order_id: &str,
    f: &Fulfillment,
    lines: &BTreeMap<String, i64>,
    now: Millis,
) -> Result<Route> {
    // Only the locations that hold one of the SKUs can take part (and a pick-up store that
    // holds none is refused either way): a chain of thousands of stores is not read per order.
    let mut all: Vec<Location> = Vec::new();
    let mut atp: HashMap<String, BTreeMap<String, i64>> = HashMap::new();
    for sku in lines.keys() {
        let found = match f {
            Fulfillment::Delivery { lat, lng, .. } => levels_for_delivery(tx, sku, *lat, *lng)?,
            Fulfillment::Pickup { .. } => levels(tx, sku)?,
        };
        for (l, level) in found {
            let e = atp.entry(level.location_id.clone()).or_default();
            if e.is_empty() {
                all.push(l);
            }
            e.insert(sku.clone(), level.available);
        }
    }
    // A pick-up store without any of it still anchors "the nearest stores that have it".
    if let Fulfillment::Pickup { store_id } = f
        && !all.iter().any(|l| &l.id == store_id)
        && let Some(l) = location(tx, store_id)?
    {
        all.push(l);
    }
    let candidates: Vec<Candidate> =
        all.iter().map(|l| Candidate { location: l, atp: atp.remove(&l.id).unwrap_or_default() }).collect();
    let route = stock::route(f, lines, &candidates).map_err(|e| {
        let nearest: Vec<String> = e.nearest.iter().map(|(id, km)| format!("{id} ({km:.1} km)")).collect();
        let mut err = DomainError::new(
            Code::OutOfStock,
            if nearest.is_empty() {
                "not enough stock to fill this order".to_string()
            } else {
                format!("not enough stock here; these have it: {}", nearest.join(", "))
            },
        );
        err.errors = e
            .nearest
            .iter()
            .map(|(id, km)| ronghe_domain::FieldError {
                field: "fulfillment".into(),
                code: Code::OutOfStock.as_str(),
                message: format!("{id} has it, {km:.1} km away"),
            })
            .collect();
        err
    })?;
    let safety: HashMap<&str, i64> = all.iter().map(|l| (l.id.as_str(), l.safety_stock)).collect();
    for a in &route.allocations {
        let reserved = tx.exec(
            "UPDATE stock SET reserved = reserved + $3, updated_at = $5
             WHERE sku = $1 AND location_id = $2 AND on_hand - reserved - $4 >= $3",
            vals![
                a.sku.as_str(),
                a.location_id.as_str(),
                a.qty,
                safety.get(a.location_id.as_str()).copied().unwrap_or(0),
                now
            ],
        )?;
        if reserved == 0 {
            return Err(
                DomainError::new(Code::OutOfStock, format!("{} was just taken at {}", a.sku, a.location_id)).into()
            );
        }
        tx.exec(
            "INSERT INTO reservations (order_id, location_id, sku, qty, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'reserved', $5, $5)",
            vals![order_id, a.location_id.as_str(), a.sku.as_str(), a.qty, now],
        )?;
    }
    Ok(route)
}

/// An order's allocations (reservations of any status), in the order they were made.
pub fn allocations(tx: &mut dyn Tx, order_id: &str) -> Result<Vec<(Allocation, String)>> {
    tx.query("SELECT location_id, sku, qty, status FROM reservations WHERE order_id = $1 ORDER BY id", vals![order_id])?
        .iter()
        .map(|r| Ok((Allocation { location_id: r.string(0)?, sku: r.string(1)?, qty: r.i64(2)? }, r.string(3)?)))
        .collect()
}

/// Mark an order's reservations picked (the goods are set aside for the shopper).
pub fn pick(tx: &mut dyn Tx, order_id: &str, now: Millis) -> Result<u64> {
    Ok(tx.exec(
        "UPDATE reservations SET status = 'picked', updated_at = $2 WHERE order_id = $1 AND status = 'reserved'",
        vals![order_id, now],
    )?)
}

/// The goods of an order's open reservations leave: on hand and reserved both go down.
/// Returns how many reservations were fulfilled.
pub fn fulfil(tx: &mut dyn Tx, order_id: &str, now: Millis) -> Result<u64> {
    let open = tx.query(
        &format!(
            "SELECT id, location_id, sku, qty FROM reservations WHERE order_id = $1 AND status IN ('reserved', 'picked'){}",
            tx.for_update()
        ),
        vals![order_id],
    )?;
    for r in &open {
        let (id, location_id, sku, qty) = (r.i64(0)?, r.string(1)?, r.string(2)?, r.i64(3)?);
        tx.exec(
            "UPDATE stock SET reserved = reserved - $3, updated_at = $4 WHERE sku = $1 AND location_id = $2",
            vals![sku.as_str(), location_id.as_str(), qty, now],
        )?;
        move_stock(tx, &location_id, &sku, -qty, "sale", Some(order_id), now)?;
        tx.exec("UPDATE reservations SET status = 'fulfilled', updated_at = $2 WHERE id = $1", vals![id, now])?;
    }
    Ok(open.len() as u64)
}

/// Put goods back on a shelf (a return received at `location_id`): sellable goods raise on
/// hand; damaged ones are journaled as received and written off at once.
pub fn restock(
    tx: &mut dyn Tx,
    location_id: &str,
    sku: &str,
    qty: i64,
    damaged: bool,
    ref_id: &str,
    now: Millis,
) -> Result<()> {
    if location(tx, location_id)?.is_none() {
        return Ok(());
    }
    move_stock(tx, location_id, sku, qty, "return", Some(ref_id), now)?;
    if damaged {
        move_stock(tx, location_id, sku, -qty, "damage", Some(ref_id), now)?;
    } else {
        notify_back_in_stock(tx, sku, now)?;
    }
    Ok(())
}

/// Give back an order's open reservations (cancellation, payment timeout, expiry).
pub fn release(tx: &mut dyn Tx, order_id: &str, now: Millis) -> Result<()> {
    let open = tx.query(
        &format!("SELECT id, location_id, sku, qty FROM reservations WHERE order_id = $1 AND status IN ('reserved', 'picked'){}", tx.for_update()),
        vals![order_id],
    )?;
    for r in open {
        let (id, location_id, sku, qty) = (r.i64(0)?, r.string(1)?, r.string(2)?, r.i64(3)?);
        tx.exec(
            "UPDATE stock SET reserved = reserved - $3, updated_at = $4 WHERE sku = $1 AND location_id = $2",
            vals![sku.as_str(), location_id.as_str(), qty, now],
        )?;
        tx.exec("UPDATE reservations SET status = 'released', updated_at = $2 WHERE id = $1", vals![id, now])?;
        notify_back_in_stock(tx, &sku, now)?;
    }
    Ok(())
}

/// The sum of open reservations per (SKU, location) next to `stock.reserved` — equal when
/// reservations never leak (tests check it).
pub fn reservation_mismatches(tx: &mut dyn Tx) -> Result<Vec<(String, String, i64, i64)>> {
    tx.query(
        "SELECT s.sku, s.location_id, s.reserved,
                COALESCE((SELECT CAST(SUM(r.qty) AS BIGINT) FROM reservations r
                          WHERE r.sku = s.sku AND r.location_id = s.location_id AND r.status IN ('reserved', 'picked')), 0)
         FROM stock s",
        &[],
    )?
    .iter()
    .map(|r| Ok((r.string(0)?, r.string(1)?, r.i64(2)?, r.i64(3)?)))
    .filter(|x: &Result<(String, String, i64, i64)>| x.as_ref().map_or(true, |(_, _, a, b)| a != b))
    .collect()
}

// ---------- transfers ----------

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Transfer {
    pub id: String,
    pub from_location: String,
    pub to_location: String,
    pub status: String,
    pub lines: Vec<(String, i64)>,
}

pub fn transfer(tx: &mut dyn Tx, id: &str) -> Result<Transfer> {
    let sql = format!("SELECT from_location, to_location, status FROM transfers WHERE id = $1{}", tx.for_update());
    let r = tx.query_one(&sql, vals![id])?.ok_or_else(|| DomainError::not_found("transfer"))?;
    let lines = tx
        .query("SELECT sku, qty FROM transfer_lines WHERE transfer_id = $1 ORDER BY sku", vals![id])?
        .iter()
        .map(|l| Ok((l.string(0)?, l.i64(1)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Transfer { id: id.into(), from_location: r.string(0)?, to_location: r.string(1)?, status: r.string(2)?, lines })
}

/// Request goods to move between two locations.
pub fn request_transfer(
    tx: &mut dyn Tx,
    id: &str,
    from: &str,
    to: &str,
    lines: &[(String, i64)],
    now: Millis,
) -> Result<Transfer> {
    for (field, loc) in [("from_location_id", from), ("to_location_id", to)] {
        if location(tx, loc)?.is_none() {
            return Err(DomainError::field(field, format!("no location {loc:?}")).into());
        }
    }
    if from == to {
        return Err(DomainError::field("to_location_id", "another location than the source").into());
    }
    tx.exec(
        "INSERT INTO transfers (id, from_location, to_location, status, created_at, updated_at) VALUES ($1, $2, $3, 'requested', $4, $4)",
        vals![id, from, to, now],
    )?;
    for (sku, qty) in lines {
        tx.exec(
            "INSERT INTO transfer_lines (transfer_id, sku, qty) VALUES ($1, $2, $3)",
            vals![id, sku.as_str(), *qty],
        )?;
    }
    transfer(tx, id)
}

/// Ship a transfer: the goods leave the source (only what is not reserved) and are in transit,
/// available nowhere until received.
pub fn ship_transfer(tx: &mut dyn Tx, id: &str, now: Millis) -> Result<Transfer> {
    let t = transfer(tx, id)?;
    if t.status != "requested" {
        return Err(DomainError::new(Code::Conflict, format!("a {} transfer cannot be shipped", t.status)).into());
    }
    for (sku, qty) in &t.lines {
        let free = stock_row(tx, sku, &t.from_location)?.map_or(0, |(h, r)| h - r);
        if free < *qty {
            return Err(DomainError::new(
                Code::OutOfStock,
                format!("{} has only {free} of {sku} free to send", t.from_location),
            )
            .into());
        }
        move_stock(tx, &t.from_location, sku, -qty, "transfer", Some(id), now)?;
    }
    tx.exec("UPDATE transfers SET status = 'shipped', updated_at = $2 WHERE id = $1", vals![id, now])?;
    transfer(tx, id)
}

/// Receive a shipped transfer: the goods are on hand at the destination.
pub fn receive_transfer(tx: &mut dyn Tx, id: &str, now: Millis) -> Result<Transfer> {
    let t = transfer(tx, id)?;
    if t.status != "shipped" {
        return Err(DomainError::new(Code::Conflict, format!("a {} transfer cannot be received", t.status)).into());
    }
    for (sku, qty) in &t.lines {
        move_stock(tx, &t.to_location, sku, *qty, "transfer", Some(id), now)?;
        notify_back_in_stock(tx, sku, now)?;
    }
    tx.exec("UPDATE transfers SET status = 'received', updated_at = $2 WHERE id = $1", vals![id, now])?;
    transfer(tx, id)
}

// ---------- back in stock ----------

/// A member waits for a SKU (at one location, or anywhere).
pub fn subscribe(tx: &mut dyn Tx, member_id: &str, sku: &str, location_id: Option<&str>, now: Millis) -> Result<i64> {
    let member = crate::members::resolve(tx, member_id)?;
    if let Some(l) = location_id
        && location(tx, l)?.is_none()
    {
        return Err(DomainError::field("location_id", format!("no location {l:?}")).into());
    }
    let r = tx
        .query_one(
            "INSERT INTO stock_subscriptions (member_id, sku, location_id, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            vals![member.as_str(), sku, location_id, now],
        )?
        .ok_or_else(|| DbError::Other("no id".into()))?;
    let id = r.i64(0)?;
    notify_back_in_stock(tx, sku, now)?;
    Ok(id)
}

/// Tell the members waiting for `sku` where it is available now: a `back_in_stock` event on
/// each one's timeline (journeys will message them), and the subscription is marked
/// notified. Returns the members told.
pub fn notify_back_in_stock(tx: &mut dyn Tx, sku: &str, now: Millis) -> Result<Vec<String>> {
    let waiting = tx.query(
        "SELECT id, member_id, location_id FROM stock_subscriptions WHERE sku = $1 AND notified_at IS NULL ORDER BY id",
        vals![sku],
    )?;
    if waiting.is_empty() {
        return Ok(Vec::new());
    }
    let available: Vec<String> =
        levels(tx, sku)?.into_iter().filter(|(_, l)| l.available > 0).map(|(l, _)| l.id).collect();
    let mut told = Vec::new();
    for w in waiting {
        let (id, member, at) = (w.i64(0)?, w.string(1)?, w.opt_string(2)?);
        let wher: Vec<&String> = available.iter().filter(|l| at.as_ref().is_none_or(|a| a == *l)).collect();
        if wher.is_empty() {
            continue;
        }
        let event = ronghe_domain::events::Event {
            message_id: format!("back-in-stock:{id}"),
            kind: ronghe_domain::events::Kind::Track,
            name: "back_in_stock".into(),
            user_id: None,
            anonymous_id: None,
            previous_id: None,
            group_id: None,
            at: now,
            channel: None,
            store_id: at.clone(),
            body: serde_json::json!({"properties": {"sku": sku, "locations": wher}}).to_string(),
            traits: None,
        };
        crate::events::insert_known(tx, &[(member.clone(), event)], "stock", now)?;
        tx.exec("UPDATE stock_subscriptions SET notified_at = $2 WHERE id = $1", vals![id, now])?;
        told.push(member);
    }
    Ok(told)
}
