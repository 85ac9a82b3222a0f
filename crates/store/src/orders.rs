//! Orders from every channel: priced from the catalogue and the loyalty programme in force
//! at `placed_at`, recorded with their points effects in one transaction, read back,
//! quoted without effects, and cancelled (reversing their effects) while not fulfilled.

use crate::db::{DbError, Tx};
use crate::{Result, catalogue, coupons, loyalty, members, outbox, points, vals};
use rand::RngCore;
use ronghe_domain::catalogue::price_at;
use ronghe_domain::pricing::{self, Context, CouponDiscount, Line, Priced};
use ronghe_domain::{Code, DomainError, Millis};

/// Channels whose sales happen at a till: the goods leave with the shopper, so the order is
/// complete at once (it is undone by a return, not a cancellation).
pub const TILL_CHANNELS: &[&str] = &["pos", "self_checkout"];

#[derive(Debug, Clone)]
pub struct LineIn {
    pub sku: String,
    pub qty: i64,
    /// A price other than the catalogue's needs `override_reason`.
    pub unit_price_fen: Option<i64>,
    pub override_reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewOrder {
    pub order_ref: String,
    pub channel: String,
    pub store_id: Option<String>,
    pub member_id: Option<String>,
    pub associate_id: Option<String>,
    pub lines: Vec<LineIn>,
    pub points_to_redeem: i64,
    pub coupon_codes: Vec<String>,
    pub placed_at: Millis,
    /// An online order created before payment: its coupons and redeemed points are held, its
    /// points are earned when it is paid, and it is cancelled if unpaid past the timeout.
    pub awaiting_payment: bool,
    /// How an online order is fulfilled: routed and reserved in the order's transaction.
    pub fulfillment: Option<ronghe_domain::stock::Fulfillment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub line_no: i64,
    pub sku: String,
    pub name: String,
    pub category: String,
    pub qty: i64,
    pub unit_price_fen: i64,
    pub catalogue_price_fen: i64,
    pub override_reason: Option<String>,
    pub subtotal_fen: i64,
    pub discount_fen: i64,
    pub points_value_fen: i64,
    pub paid_fen: i64,
    pub points_earned: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub order_ref: String,
    pub channel: String,
    pub store_id: Option<String>,
    pub member_id: Option<String>,
    pub associate_id: Option<String>,
    pub status: String,
    pub placed_at: Millis,
    pub program_version: i64,
    pub subtotal_fen: i64,
    pub discount_fen: i64,
    pub points_redeemed: i64,
    pub points_value_fen: i64,
    pub payable_fen: i64,
    pub points_earned: i64,
    pub lines: Vec<OrderLine>,
    pub coupons: Vec<CouponDiscount>,
    /// Where the goods come from (online orders routed to locations), with each reservation's status.
    pub allocations: Vec<(ronghe_domain::stock::Allocation, String)>,
    /// Why those locations.
    pub route_reason: Option<String>,
    /// For a pick-up: the code the shopper shows at hand-over (never shown to tills).
    pub pickup_code: Option<String>,
}

pub(crate) fn new_order_id(now: Millis) -> String {
    let mut b = [0u8; 5];
    rand::thread_rng().fill_bytes(&mut b);
    format!("o_{:012x}{}", now.clamp(0, 0xffff_ffff_ffff), hex::encode(b))
}

/// Price an order against the catalogue and the programme in force at its `placed_at`,
/// without writing anything. Returns the member it resolves to, the programme version, the
/// resolved lines and the pricing.
pub fn prepare(tx: &mut dyn Tx, o: &NewOrder) -> Result<(Option<String>, i64, Vec<OrderLine>, Priced)> {
    prepare_with_coupons(tx, o).map(|(m, v, l, p, _)| (m, v, l, p))
}

type Prepared = (Option<String>, i64, Vec<OrderLine>, Priced, Vec<ronghe_domain::coupon::Held>);

fn prepare_with_coupons(tx: &mut dyn Tx, o: &NewOrder) -> Result<Prepared> {
    let member = match &o.member_id {
        Some(m) => Some(members::resolve(tx, m)?),
        None => None,
    };
    let (version, program, _) = loyalty::at(tx, o.placed_at)?;
    let mut resolved = Vec::with_capacity(o.lines.len());
    let mut errors = ronghe_domain::error::Validator::new();
    let mut unknown = Vec::new();
    for (i, l) in o.lines.iter().enumerate() {
        let Some(p) = catalogue::get(tx, &l.sku)? else {
            unknown.push(format!("lines[{i}].sku"));
            continue;
        };
        let Some(catalogue_price) = price_at(&p.prices, &o.channel, o.placed_at) else {
            unknown.push(format!("lines[{i}].sku"));
            continue;
        };
        let unit = match l.unit_price_fen {
            Some(u) if u != catalogue_price => {
                if l.override_reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                    errors.push(
                        format!("lines[{i}].unit_price_fen"),
                        format!(
                            "the catalogue price is {catalogue_price}; a different price needs price_override_reason"
                        ),
                    );
                }
                u
            }
            _ => catalogue_price,
        };
        resolved.push(OrderLine {
            line_no: i as i64 + 1,
            sku: p.sku,
            name: p.name,
            category: p.category,
            qty: l.qty,
            unit_price_fen: unit,
            catalogue_price_fen: catalogue_price,
            override_reason: if unit != catalogue_price { l.override_reason.clone() } else { None },
            subtotal_fen: 0,
            discount_fen: 0,
            points_value_fen: 0,
            paid_fen: 0,
            points_earned: 0,
        });
    }
    if !unknown.is_empty() {
        let errs = unknown
            .into_iter()
            .map(|f| ronghe_domain::FieldError {
                field: f,
                code: Code::UnknownSku.as_str(),
                message: "not in the catalogue at placed_at".into(),
            })
            .collect();
        return Err(DomainError { code: Code::UnknownSku, message: "unknown SKU".into(), errors: errs }.into());
    }
    errors.finish()?;
    if o.points_to_redeem > 0 && member.is_none() {
        return Err(DomainError::field("points_to_redeem", "only a member can redeem points").into());
    }
    let lines: Vec<Line> = resolved
        .iter()
        .map(|l| Line {
            sku: l.sku.clone(),
            category: l.category.clone(),
            qty: l.qty,
            unit_price_fen: l.unit_price_fen,
        })
        .collect();
    let held = coupons::for_order(tx, &o.coupon_codes)?;
    let tier = match &member {
        Some(m) => crate::tiers::current(tx, m)?,
        None => None,
    };
    let ctx = Context {
        channel: &o.channel,
        store_id: o.store_id.as_deref(),
        member_id: member.as_deref(),
        placed_at: o.placed_at,
        tier: tier.as_deref(),
    };
    let priced = pricing::price(&program, &ctx, &lines, &held, o.points_to_redeem, member.is_some())?;
    if let Some(m) = &member
        && o.points_to_redeem > 0
    {
        let b = points::balance(tx, m)?;
        if b < o.points_to_redeem {
            return Err(DomainError::new(Code::InsufficientPoints, format!("the balance is {b} points")).into());
        }
    }
    for (l, p) in resolved.iter_mut().zip(&priced.lines) {
        l.subtotal_fen = p.subtotal_fen;
        l.discount_fen = p.discount_fen;
        l.points_value_fen = p.points_value_fen;
        l.paid_fen = p.paid_fen;
        l.points_earned = p.points_earned;
    }
    Ok((member, version, resolved, priced, held))
}

/// The order already recorded under (channel, store, order_ref), if any.
pub fn find_by_ref(tx: &mut dyn Tx, channel: &str, store_id: Option<&str>, order_ref: &str) -> Result<Option<Order>> {
    let r = tx.query_one(
        "SELECT id FROM orders WHERE channel = $1 AND COALESCE(store_id, '') = $2 AND order_ref = $3",
        vals![channel, store_id.unwrap_or(""), order_ref],
    )?;
    match r {
        Some(r) => get(tx, &r.string(0)?),
        None => Ok(None),
    }
}

/// Record an order and its points effects. A second order with the same (channel, store,
/// order_ref) is not recorded again: the first one is returned with `false`.
pub fn place(tx: &mut dyn Tx, o: &NewOrder, now: Millis) -> Result<(Order, bool)> {
    if let Some(existing) = find_by_ref(tx, &o.channel, o.store_id.as_deref(), &o.order_ref)? {
        return Ok((existing, false));
    }
    let (member, version, lines, priced, held) = prepare_with_coupons(tx, o)?;
    let id = new_order_id(now);
    let status = if TILL_CHANNELS.contains(&o.channel.as_str()) {
        "completed"
    } else if o.awaiting_payment {
        "awaiting_payment"
    } else {
        "placed"
    };
    tx.exec(
        "INSERT INTO orders (id, channel, store_id, order_ref, member_id, associate_id, status, placed_at, created_at, updated_at,
                             program_version, subtotal_fen, discount_fen, points_redeemed, points_value_fen, payable_fen, points_earned)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15, $16)",
        vals![
            id.as_str(),
            o.channel.as_str(),
            o.store_id.clone(),
            o.order_ref.as_str(),
            member.clone(),
            o.associate_id.clone(),
            status,
            o.placed_at,
            now,
            version,
            priced.subtotal_fen,
            priced.discount_fen,
            priced.points_redeemed,
            priced.points_value_fen,
            priced.payable_fen,
            priced.points_earned
        ],
    )?;
    for l in &lines {
        tx.exec(
            "INSERT INTO order_lines (order_id, line_no, sku, name, category, qty, unit_price_fen, catalogue_price_fen, override_reason,
                                      subtotal_fen, discount_fen, points_value_fen, paid_fen, points_earned)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            vals![
                id.as_str(),
                l.line_no,
                l.sku.as_str(),
                l.name.as_str(),
                l.category.as_str(),
                l.qty,
                l.unit_price_fen,
                l.catalogue_price_fen,
                l.override_reason.clone(),
                l.subtotal_fen,
                l.discount_fen,
                l.points_value_fen,
                l.paid_fen,
                l.points_earned
            ],
        )?;
    }
    coupons::redeem(tx, &id, member.as_deref(), &held, &priced.coupons)?;
    fulfil(tx, o, &id, &lines, now)?;
    if let Some(m) = &member {
        points::append(tx, m, -priced.points_redeemed, "redeem", "order", &id, None, now)?;
        if !o.awaiting_payment {
            let online = !TILL_CHANNELS.contains(&o.channel.as_str());
            points::credit_earned(tx, m, &id, priced.points_earned, online, now)?;
            crate::tiers::upgrade(tx, m, now)?;
        }
        let event = crate::events::OrderEvent {
            order_id: &id,
            member_id: m,
            channel: &o.channel,
            store_id: o.store_id.as_deref(),
            payable_fen: priced.payable_fen,
            placed_at: o.placed_at,
        };
        crate::events::record_order(tx, event, now)?;
    }
    outbox::append(
        tx,
        "order.placed",
        member.as_deref(),
        &serde_json::json!({"order_id": id, "member_id": member}),
        now,
    )?;
    let order = get(tx, &id)?.ok_or_else(|| DbError::Other("order vanished".into()))?;
    Ok((order, true))
}

/// Stock effects of a new order, in its transaction: a till sale leaves the store's shelf at
/// once (never refused); an online order with a fulfilment is routed and reserved, or refused
/// with `out_of_stock` (and then nothing of it is kept).
fn fulfil(tx: &mut dyn Tx, o: &NewOrder, id: &str, lines: &[OrderLine], now: Millis) -> Result<()> {
    if TILL_CHANNELS.contains(&o.channel.as_str()) {
        // A store not set up as a location counts no stock: one look, not one per line.
        if let Some(store) = &o.store_id
            && crate::stock::location(tx, store)?.is_some()
        {
            for l in lines {
                crate::stock::sell_at_till(tx, store, &l.sku, l.qty, id, now)?;
            }
        }
        return Ok(());
    }
    let Some(f) = &o.fulfillment else { return Ok(()) };
    let mut wanted: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for l in lines {
        *wanted.entry(l.sku.clone()).or_default() += l.qty;
    }
    let route = crate::stock::route_and_reserve(tx, id, f, &wanted, now)?;
    let kind = match f {
        ronghe_domain::stock::Fulfillment::Pickup { store_id } => {
            serde_json::json!({"type": "pickup", "store_id": store_id})
        }
        ronghe_domain::stock::Fulfillment::Delivery { lat, lng, allow_split } => {
            serde_json::json!({"type": "delivery", "address": {"lat": lat, "lng": lng}, "allow_split": allow_split})
        }
    };
    let code = matches!(f, ronghe_domain::stock::Fulfillment::Pickup { .. }).then(|| {
        let mut b = [0u8; 4];
        rand::thread_rng().fill_bytes(&mut b);
        format!("{:06}", u32::from_le_bytes(b) % 1_000_000)
    });
    tx.exec(
        "UPDATE orders SET fulfillment = $2, route_reason = $3, pickup_code = $4 WHERE id = $1",
        vals![id, kind.to_string(), route.reason.as_str(), code],
    )?;
    Ok(())
}

/// Hand over or ship an online order: its reservations leave the shelf (on hand and reserved
/// both go down, journaled as sales) and the order is fulfilled. A pick-up needs its code.
pub fn fulfil_online(tx: &mut dyn Tx, id: &str, pickup_code: Option<&str>, now: Millis) -> Result<Order> {
    let sql = format!("SELECT status, pickup_code FROM orders WHERE id = $1{}", tx.for_update());
    let r = tx.query_one(&sql, vals![id])?.ok_or_else(|| DomainError::not_found("order"))?;
    let (status, code) = (r.string(0)?, r.opt_string(1)?);
    if status != "placed" {
        return Err(DomainError::new(Code::Conflict, format!("an order that is {status} cannot be handed over")).into());
    }
    match (code.as_deref(), pickup_code) {
        (Some(want), Some(got)) if subtle::ConstantTimeEq::ct_eq(want.as_bytes(), got.trim().as_bytes()).into() => {}
        (Some(_), Some(_)) => return Err(DomainError::field("pickup_code", "does not match this order's code").into()),
        (Some(_), None) => {
            return Err(DomainError::field("pickup_code", "a pick-up is handed over against its code").into());
        }
        (None, _) => {}
    }
    if crate::stock::fulfil(tx, id, now)? == 0 {
        return Err(DomainError::new(Code::Conflict, "this order has no reservation to fulfil").into());
    }
    tx.exec("UPDATE orders SET status = 'fulfilled', updated_at = $2 WHERE id = $1", vals![id, now])?;
    outbox::append(tx, "order.fulfilled", None, &serde_json::json!({"order_id": id}), now)?;
    get(tx, id)?.ok_or_else(|| DbError::Other("order vanished".into()).into())
}

/// Cancel pick-up orders not collected by `deadline` (created before it): their points,
/// coupons and reservations come back as for any cancellation.
pub fn expire_pickups(tx: &mut dyn Tx, deadline: Millis, now: Millis) -> Result<Vec<String>> {
    cancel_selected(
        tx,
        "SELECT id FROM orders WHERE status = 'placed' AND pickup_code IS NOT NULL AND created_at <= $1 ORDER BY created_at",
        deadline,
        now,
    )
}

/// Cancel every order `select` (one `$1` parameter) names, oldest first; their ids.
fn cancel_selected(tx: &mut dyn Tx, select: &str, param: Millis, now: Millis) -> Result<Vec<String>> {
    let ids: Vec<String> = tx.query(select, vals![param])?.iter().map(|r| r.string(0)).collect::<Result<_, _>>()?;
    for id in &ids {
        cancel(tx, id, now)?;
    }
    Ok(ids)
}

/// What an offline sync changed in an order, for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineFlag {
    pub code: &'static str,
    pub points_asked: i64,
    pub points_redeemed: i64,
}

/// Record an order a till took while offline. The redemption is capped by the offline limit
/// and by what the member's balance still covers; an order is never refused or left
/// overdrawn for it, but a cut redemption is flagged for review.
pub fn place_offline(
    tx: &mut dyn Tx,
    o: &NewOrder,
    offline_limit: i64,
    now: Millis,
) -> Result<(Order, bool, Option<OfflineFlag>)> {
    if let Some(existing) = find_by_ref(tx, &o.channel, o.store_id.as_deref(), &o.order_ref)? {
        return Ok((existing, false, None));
    }
    let mut o = o.clone();
    let mut flag = None;
    if o.points_to_redeem > 0 {
        let covered = match &o.member_id {
            Some(m) => {
                let m = members::resolve(tx, m)?;
                points::balance(tx, &m)?
            }
            None => 0,
        };
        let allowed = o.points_to_redeem.min(offline_limit).min(covered);
        if allowed < o.points_to_redeem {
            let code = if covered < o.points_to_redeem.min(offline_limit) {
                "redemption_not_covered"
            } else {
                "offline_limit_exceeded"
            };
            flag = Some(OfflineFlag { code, points_asked: o.points_to_redeem, points_redeemed: allowed });
            o.points_to_redeem = allowed;
        }
    }
    let (order, created) = place(tx, &o, now)?;
    if let Some(f) = &flag {
        outbox::append(
            tx,
            "order.review",
            order.member_id.as_deref(),
            &serde_json::json!({"order_id": order.id, "flag": f.code}),
            now,
        )?;
    }
    Ok((order, created, flag))
}

pub fn get(tx: &mut dyn Tx, id: &str) -> Result<Option<Order>> {
    let Some(r) = tx.query_one(
        "SELECT id, order_ref, channel, store_id, member_id, associate_id, status, placed_at, program_version, subtotal_fen,
                discount_fen, points_redeemed, points_value_fen, payable_fen, points_earned, route_reason, pickup_code
         FROM orders WHERE id = $1",
        vals![id],
    )?
    else {
        return Ok(None);
    };
    let lines = tx
        .query(
            "SELECT line_no, sku, name, category, qty, unit_price_fen, catalogue_price_fen, override_reason, subtotal_fen,
                    discount_fen, points_value_fen, paid_fen, points_earned
             FROM order_lines WHERE order_id = $1 ORDER BY line_no",
            vals![id],
        )?
        .iter()
        .map(|l| {
            Ok(OrderLine {
                line_no: l.i64(0)?,
                sku: l.string(1)?,
                name: l.string(2)?,
                category: l.string(3)?,
                qty: l.i64(4)?,
                unit_price_fen: l.i64(5)?,
                catalogue_price_fen: l.i64(6)?,
                override_reason: l.opt_string(7)?,
                subtotal_fen: l.i64(8)?,
                discount_fen: l.i64(9)?,
                points_value_fen: l.i64(10)?,
                paid_fen: l.i64(11)?,
                points_earned: l.i64(12)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Order {
        id: r.string(0)?,
        order_ref: r.string(1)?,
        channel: r.string(2)?,
        store_id: r.opt_string(3)?,
        member_id: r.opt_string(4)?,
        associate_id: r.opt_string(5)?,
        status: r.string(6)?,
        placed_at: r.i64(7)?,
        program_version: r.i64(8)?,
        subtotal_fen: r.i64(9)?,
        discount_fen: r.i64(10)?,
        points_redeemed: r.i64(11)?,
        points_value_fen: r.i64(12)?,
        payable_fen: r.i64(13)?,
        points_earned: r.i64(14)?,
        lines,
        coupons: coupons::of_order(tx, id)?,
        // Only routed orders have allocations (a till sale never does): skip the query.
        allocations: match r.opt_string(15)? {
            Some(_) => crate::stock::allocations(tx, id)?,
            None => Vec::new(),
        },
        route_reason: r.opt_string(15)?,
        pickup_code: r.opt_string(16)?,
    }))
}

/// Cancel an order that has not been fulfilled: redeemed points come back, earned points
/// are taken back (refused with `insufficient_points` if the member already spent them), and
/// coupons still valid are given back.
pub fn cancel(tx: &mut dyn Tx, id: &str, now: Millis) -> Result<Order> {
    let sql = format!(
        "SELECT status, member_id, points_redeemed, points_earned FROM orders WHERE id = $1{}",
        tx.for_update()
    );
    let r = tx.query_one(&sql, vals![id])?.ok_or_else(|| DomainError::not_found("order"))?;
    let status = r.string(0)?;
    if status != "placed" && status != "awaiting_payment" {
        let why = if status == "cancelled" || status == "returned" {
            "the order is already cancelled or returned"
        } else {
            "a completed till sale is undone by a return"
        };
        return Err(DomainError::new(Code::OrderNotCancellable, why).into());
    }
    let returned = tx
        .query_one(
            "SELECT CAST(COALESCE(SUM(returned_qty), 0) AS BIGINT) FROM order_lines WHERE order_id = $1",
            vals![id],
        )?
        .map(|r| r.i64(0))
        .transpose()?
        .unwrap_or(0);
    if returned > 0 {
        return Err(
            DomainError::new(Code::OrderNotCancellable, "part of the order was returned: return the rest").into()
        );
    }
    if let Some(m) = r.opt_string(1)? {
        // The member may have been merged since: the points live with the survivor.
        let m = members::resolve(tx, &m)?;
        points::append(tx, &m, r.i64(2)?, "cancel_redeem", "order", id, None, now)?;
        if status == "placed" {
            // Points still pending are simply dropped; usable ones are taken back.
            let pending = points::take_pending(tx, id, r.i64(3)?)?;
            points::append(tx, &m, -(r.i64(3)? - pending), "cancel_earn", "order", id, None, now)?;
        }
    }
    coupons::restore(tx, id, now)?;
    tx.exec("UPDATE orders SET status = 'cancelled', updated_at = $2 WHERE id = $1", vals![id, now])?;
    crate::stock::release(tx, id, now)?;
    outbox::append(tx, "order.cancelled", None, &serde_json::json!({"order_id": id}), now)?;
    get(tx, id)?.ok_or_else(|| DbError::Other("order vanished".into()).into())
}

/// Confirm payment of an order created awaiting payment: its points are earned now.
pub fn pay(tx: &mut dyn Tx, id: &str, now: Millis) -> Result<Order> {
    let sql = format!("SELECT status, member_id, points_earned FROM orders WHERE id = $1{}", tx.for_update());
    let r = tx.query_one(&sql, vals![id])?.ok_or_else(|| DomainError::not_found("order"))?;
    if r.string(0)? != "awaiting_payment" {
        return Err(DomainError::new(Code::Conflict, "the order is not awaiting payment").into());
    }
    if let Some(m) = r.opt_string(1)? {
        let m = members::resolve(tx, &m)?;
        // Only online orders wait for payment: their points may be pending.
        points::credit_earned(tx, &m, id, r.i64(2)?, true, now)?;
        crate::tiers::upgrade(tx, &m, now)?;
    }
    tx.exec("UPDATE orders SET status = 'placed', updated_at = $2 WHERE id = $1", vals![id, now])?;
    outbox::append(tx, "order.paid", None, &serde_json::json!({"order_id": id}), now)?;
    get(tx, id)?.ok_or_else(|| DbError::Other("order vanished".into()).into())
}

/// Cancel the orders left unpaid for longer than `timeout_ms`, giving back their points and
/// coupons. Safe to repeat; returns the ids cancelled.
pub fn cancel_unpaid(tx: &mut dyn Tx, timeout_ms: i64, now: Millis) -> Result<Vec<String>> {
    cancel_selected(
        tx,
        "SELECT id FROM orders WHERE status = 'awaiting_payment' AND created_at <= $1 ORDER BY created_at",
        now - timeout_ms,
        now,
    )
}

/// An order in a member's 360° view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSummary {
    pub id: String,
    pub channel: String,
    pub store_id: Option<String>,
    pub status: String,
    pub placed_at: Millis,
    pub payable_fen: i64,
}

/// A member's latest `limit` orders, newest first.
pub fn recent(tx: &mut dyn Tx, member_id: &str, limit: i64) -> Result<Vec<OrderSummary>> {
    tx.query(
        "SELECT id, channel, store_id, status, placed_at, payable_fen FROM orders WHERE member_id = $1
         ORDER BY placed_at DESC, id DESC LIMIT $2",
        vals![member_id, limit],
    )?
    .iter()
    .map(|r| {
        Ok(OrderSummary {
            id: r.string(0)?,
            channel: r.string(1)?,
            store_id: r.opt_string(2)?,
            status: r.string(3)?,
            placed_at: r.i64(4)?,
            payable_fen: r.i64(5)?,
        })
    })
    .collect()
}
