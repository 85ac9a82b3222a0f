//! The catalogue (`/v1/products`), the loyalty programme (`/v1/loyalty/program`), orders
//! (`/v1/orders`) and the points ledger (`/v1/members/{id}/points`).

use crate::clock::rfc3339;
use crate::extract::{Caller, Json};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::{AppState, audit_admin};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use ronghe_domain::DomainError;
use ronghe_domain::auth::{Action, Role};
use ronghe_domain::catalogue;
use ronghe_domain::error::Validator;
use ronghe_domain::loyalty::Program;
use ronghe_store::orders::{self, LineIn, NewOrder, Order};
use ronghe_store::{catalogue as cat, loyalty, members, points};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

// ---------- catalogue ----------

#[derive(Debug, Deserialize, ToSchema)]
pub struct ProductIn {
    pub sku: String,
    pub name: String,
    pub category: String,
    pub price_fen: i64,
    /// Published channel prices, e.g. `{"mini_program": 1899}`; other channels pay `price_fen`.
    #[serde(default)]
    pub channel_prices_fen: BTreeMap<String, i64>,
    /// RFC 3339; from when this price applies (default: now). Future prices can be pushed ahead.
    pub effective_from: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ProductsIn {
    pub items: Vec<ProductIn>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductsOut {
    pub upserted: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceView {
    pub effective_from: String,
    pub price_fen: i64,
    pub channel_prices_fen: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductView {
    pub sku: String,
    pub name: String,
    pub category: String,
    /// The base price in force now (absent before the first price applies).
    pub price_fen: Option<i64>,
    pub channel_prices_fen: BTreeMap<String, i64>,
    /// Every price row, oldest first, including scheduled ones.
    pub prices: Vec<PriceView>,
}

fn parse_time(field: &str, s: &str) -> Result<i64, DomainError> {
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| DomainError::field(field, "an RFC 3339 time, e.g. 2026-11-11T00:00:00+08:00"))
}

/// Push products and prices in bulk (from the ERP)
///
/// Each item upserts the product and the price row that applies from `effective_from`.
/// Orders are priced from this list; a till cannot invent a price or a category.
#[utoipa::path(put, path = "/v1/products", tag = "catalogue", request_body = ProductsIn,
    responses((status = 200, body = ProductsOut), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn put_products(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ProductsIn>,
) -> ApiResult<axum::Json<ProductsOut>> {
    caller.require(Action::ManageCatalogue)?;
    let now = state.now();
    let mut v = Validator::new();
    if body.items.is_empty() || body.items.len() > 10_000 {
        v.push("items", "1 to 10,000 items");
    }
    let mut items = Vec::with_capacity(body.items.len());
    for (i, it) in body.items.into_iter().enumerate() {
        let prefix = format!("items[{i}]");
        catalogue::check_item(&mut v, &prefix, &it.sku, &it.name, &it.category, it.price_fen, &it.channel_prices_fen);
        let from = match &it.effective_from {
            Some(s) => v.check(&format!("{prefix}.effective_from"), parse_time("", s)).unwrap_or(now),
            None => now,
        };
        items.push(cat::Item {
            sku: it.sku,
            name: it.name.trim().into(),
            category: it.category.trim().into(),
            price_fen: it.price_fen,
            channel_prices_fen: it.channel_prices_fen,
            effective_from: from,
        });
    }
    v.finish()?;
    let p = caller.0.clone();
    let n = state
        .store
        .write(move |tx, _| {
            let n = cat::upsert(tx, &items, now)?;
            audit_admin(tx, &p, now, "catalogue.upsert", None)?;
            Ok(n)
        })
        .await?;
    Ok(axum::Json(ProductsOut { upserted: n }))
}

/// Read a product and its price list
#[utoipa::path(get, path = "/v1/products/{sku}", tag = "catalogue", params(("sku" = String, Path)),
    responses((status = 200, body = ProductView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_product(
    State(state): State<AppState>,
    caller: Caller,
    Path(sku): Path<String>,
) -> ApiResult<axum::Json<ProductView>> {
    caller.require(Action::ReadCatalogue)?;
    let p = state
        .store
        .read_short(move |tx, _| cat::get(tx, &sku))
        .await?
        .ok_or_else(|| DomainError::not_found("product"))?;
    let now = state.now();
    let current = p.prices.iter().filter(|r| r.effective_from <= now).max_by_key(|r| r.effective_from);
    Ok(axum::Json(ProductView {
        price_fen: current.map(|r| r.price_fen),
        channel_prices_fen: current.map(|r| r.channel_prices_fen.clone()).unwrap_or_default(),
        prices: p
            .prices
            .iter()
            .map(|r| PriceView {
                effective_from: rfc3339(r.effective_from),
                price_fen: r.price_fen,
                channel_prices_fen: r.channel_prices_fen.clone(),
            })
            .collect(),
        sku: p.sku,
        name: p.name,
        category: p.category,
    }))
}

// ---------- loyalty programme ----------

#[derive(Debug, Deserialize, ToSchema)]
pub struct ProgramIn {
    /// The rules; see docs/loyalty.md. Omitted parts take their defaults.
    #[schema(value_type = Object)]
    pub program: serde_json::Value,
    /// RFC 3339; from when these rules apply (default: now). Orders placed earlier keep the rules of their time.
    pub effective_from: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgramView {
    /// 0 is the built-in default programme.
    pub version: i64,
    pub effective_from: String,
    #[schema(value_type = Object)]
    pub program: serde_json::Value,
}

/// Set the loyalty programme (a new version)
///
/// Earning rate and multipliers (channel, category, promotions), redemption value and limits.
/// Each call creates a version that applies from `effective_from`.
#[utoipa::path(put, path = "/v1/loyalty/program", tag = "loyalty", request_body = ProgramIn,
    responses((status = 200, body = ProgramView), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn put_program(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ProgramIn>,
) -> ApiResult<axum::Json<ProgramView>> {
    caller.require(Action::ManageProgram)?;
    let now = state.now();
    let program: Program =
        serde_json::from_value(body.program).map_err(|e| DomainError::field("program", e.to_string()))?;
    program.validate().map_err(|e| e.within("program"))?;
    let from = match &body.effective_from {
        Some(s) => parse_time("effective_from", s)?,
        None => now,
    };
    let (p, prog) = (caller.0.clone(), program.clone());
    let version = state
        .store
        .write(move |tx, _| {
            let v = loyalty::set(tx, &prog, from, now)?;
            audit_admin(tx, &p, now, "loyalty.program", Some(&v.to_string()))?;
            Ok(v)
        })
        .await?;
    Ok(axum::Json(ProgramView {
        version,
        effective_from: rfc3339(from),
        program: serde_json::to_value(program).unwrap_or_default(),
    }))
}

/// Read the loyalty programme in force now
#[utoipa::path(get, path = "/v1/loyalty/program", tag = "loyalty",
    responses((status = 200, body = ProgramView), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_program(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<ProgramView>> {
    caller.require(Action::ReadCatalogue)?;
    let now = state.now();
    let (version, program, from) = state.store.read_short(move |tx, _| loyalty::at(tx, now)).await?;
    Ok(axum::Json(ProgramView {
        version,
        effective_from: rfc3339(from),
        program: serde_json::to_value(program).unwrap_or_default(),
    }))
}

// ---------- orders ----------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderLineIn {
    pub sku: String,
    pub qty: i64,
    /// Only to sell at another price than the catalogue's, with `price_override_reason`.
    pub unit_price_fen: Option<i64>,
    /// markdown, weighed_goods, damaged… (store keys only).
    pub price_override_reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderIn {
    /// The till's or shop's own reference: an order is unique on (channel, store_id, order_ref).
    pub order_ref: String,
    pub member_id: Option<String>,
    /// pos, self_checkout, mini_program, app, web, wecom, douyin… (a scoped key's own by default).
    pub channel: Option<String>,
    pub store_id: Option<String>,
    /// The store associate (导购) credited with the sale.
    pub associate_id: Option<String>,
    pub lines: Vec<OrderLineIn>,
    #[serde(default)]
    pub points_to_redeem: i64,
    /// Coupons to redeem in this order (several only when all are stackable).
    #[serde(default)]
    pub coupon_codes: Vec<String>,
    /// `pending` (online channels): create the order awaiting payment; confirm it with
    /// `POST /v1/orders/{id}/pay` before the payment timeout or it is cancelled.
    pub payment: Option<String>,
    /// RFC 3339 (default now): a late upload is priced with the rules of this time.
    pub placed_at: Option<String>,
    /// Online orders: `pickup` at a store or `delivery` to a point; routed and reserved with
    /// the order (see the README's stock model). Absent or `in_store`: no reservation.
    pub fulfillment: Option<FulfillmentIn>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FulfillmentIn {
    /// `in_store`, `pickup` or `delivery`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For a pick-up: the store.
    pub store_id: Option<String>,
    /// For a delivery: where to.
    pub address: Option<PointIn>,
    /// May a delivery come from several locations when no single one has everything?
    #[serde(default)]
    pub allow_split: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PointIn {
    pub lat: f64,
    pub lng: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AllocationView {
    pub location_id: String,
    pub sku: String,
    pub qty: i64,
    /// reserved, picked, fulfilled or released.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderLineView {
    pub line_id: i64,
    pub sku: String,
    pub name: String,
    pub category: String,
    pub qty: i64,
    pub unit_price_fen: i64,
    pub catalogue_price_fen: i64,
    pub price_override_reason: Option<String>,
    pub subtotal_fen: i64,
    pub discount_fen: i64,
    pub points_value_fen: i64,
    pub paid_fen: i64,
    pub points_earned: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    /// Absent in a quote.
    pub id: Option<String>,
    /// completed (till sale), placed (online), cancelled; absent in a quote.
    pub status: Option<String>,
    pub order_ref: String,
    pub channel: String,
    pub store_id: Option<String>,
    pub member_id: Option<String>,
    pub associate_id: Option<String>,
    pub placed_at: String,
    pub program_version: i64,
    pub lines: Vec<OrderLineView>,
    pub subtotal_fen: i64,
    pub discount_fen: i64,
    pub points_redeemed: i64,
    pub points_value_fen: i64,
    pub payable_fen: i64,
    pub points_earned: i64,
    /// The discount of each coupon, and its share of each line.
    pub coupons: Vec<CouponView>,
    /// Where an online order's goods come from (empty for till sales and quotes).
    pub allocations: Vec<AllocationView>,
    /// Why those locations.
    pub route_reason: Option<String>,
    /// A pick-up's code, shown to the shopper (answers to channel and admin keys only; the
    /// store checks it at hand-over).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CouponLineView {
    pub line_id: i64,
    pub discount_fen: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CouponView {
    pub code: String,
    pub discount_fen: i64,
    pub lines: Vec<CouponLineView>,
}

fn coupon_views(c: &[ronghe_domain::pricing::CouponDiscount]) -> Vec<CouponView> {
    c.iter()
        .map(|d| CouponView {
            code: d.code.clone(),
            discount_fen: d.discount_fen,
            lines: d
                .per_line_fen
                .iter()
                .enumerate()
                .filter(|(_, f)| **f > 0)
                .map(|(i, f)| CouponLineView { line_id: i as i64 + 1, discount_fen: *f })
                .collect(),
        })
        .collect()
}

fn line_views(lines: &[orders::OrderLine]) -> Vec<OrderLineView> {
    lines
        .iter()
        .map(|l| OrderLineView {
            line_id: l.line_no,
            sku: l.sku.clone(),
            name: l.name.clone(),
            category: l.category.clone(),
            qty: l.qty,
            unit_price_fen: l.unit_price_fen,
            catalogue_price_fen: l.catalogue_price_fen,
            price_override_reason: l.override_reason.clone(),
            subtotal_fen: l.subtotal_fen,
            discount_fen: l.discount_fen,
            points_value_fen: l.points_value_fen,
            paid_fen: l.paid_fen,
            points_earned: l.points_earned,
        })
        .collect()
}

fn order_view(o: &Order) -> OrderView {
    OrderView {
        id: Some(o.id.clone()),
        status: Some(o.status.clone()),
        order_ref: o.order_ref.clone(),
        channel: o.channel.clone(),
        store_id: o.store_id.clone(),
        member_id: o.member_id.clone(),
        associate_id: o.associate_id.clone(),
        placed_at: rfc3339(o.placed_at),
        program_version: o.program_version,
        lines: line_views(&o.lines),
        subtotal_fen: o.subtotal_fen,
        discount_fen: o.discount_fen,
        points_redeemed: o.points_redeemed,
        points_value_fen: o.points_value_fen,
        payable_fen: o.payable_fen,
        points_earned: o.points_earned,
        coupons: coupon_views(&o.coupons),
        allocations: o
            .allocations
            .iter()
            .map(|(a, status)| AllocationView {
                location_id: a.location_id.clone(),
                sku: a.sku.clone(),
                qty: a.qty,
                status: status.clone(),
            })
            .collect(),
        route_reason: o.route_reason.clone(),
        pickup_code: None,
    }
}

/// The order as the caller may see it: the pick-up code only for the shopper's side.
fn order_view_for(caller: &Caller, o: &Order) -> OrderView {
    let mut v = order_view(o);
    if matches!(caller.0.role, Role::Admin | Role::Channel) {
        v.pickup_code = o.pickup_code.clone();
    }
    v
}

/// How far ahead of the server's clock a till's `placed_at` may be (clock skew).
const MAX_CLOCK_SKEW_MS: i64 = 5 * 60_000;

fn parse_order(state: &AppState, caller: &Caller, body: OrderIn) -> Result<NewOrder, ApiError> {
    let p = &caller.0;
    let mut v = Validator::new();
    let now = state.now();
    let order_ref = body.order_ref.trim().to_string();
    if order_ref.is_empty() || order_ref.len() > 64 {
        v.push("order_ref", "1 to 64 characters");
    }
    let channel = match (&p.channel, body.channel) {
        (Some(own), Some(asked)) if *own != asked => {
            return Err(ApiError::forbidden(format!("this key writes only for channel {own}")));
        }
        (Some(own), _) => own.clone(),
        (None, Some(c)) => c,
        (None, None) if p.role == Role::Store => "pos".to_string(),
        (None, None) => {
            v.push("channel", "required");
            String::new()
        }
    };
    if !channel.is_empty() && !catalogue::check_channel(&channel) {
        v.push("channel", "a snake_case channel name");
    }
    let store_id = match (&p.store_id, body.store_id) {
        (Some(own), Some(asked)) if *own != asked => {
            return Err(ApiError::forbidden(format!("this key writes only for store {own}")));
        }
        (Some(own), _) => Some(own.clone()),
        (None, s) => s,
    };
    if orders::TILL_CHANNELS.contains(&channel.as_str()) && store_id.is_none() {
        v.push("store_id", "a till sale names its store");
    }
    if body.lines.is_empty() || body.lines.len() > 200 {
        v.push("lines", "1 to 200 lines");
    }
    let mut lines = Vec::new();
    for (i, l) in body.lines.into_iter().enumerate() {
        if !(1..=100_000).contains(&l.qty) {
            v.push(format!("lines[{i}].qty"), "1 to 100,000");
        }
        if l.unit_price_fen.is_some_and(|u| u < 0) {
            v.push(format!("lines[{i}].unit_price_fen"), "not negative");
        }
        if l.price_override_reason.is_some() && p.role != Role::Store && p.role != Role::Admin {
            return Err(ApiError::forbidden("only a till (store key) may override a catalogue price"));
        }
        lines.push(LineIn {
            sku: l.sku,
            qty: l.qty,
            unit_price_fen: l.unit_price_fen,
            override_reason: l.price_override_reason,
        });
    }
    let awaiting_payment = match body.payment.as_deref() {
        None | Some("paid") => false,
        Some("pending") if !orders::TILL_CHANNELS.contains(&channel.as_str()) => true,
        Some("pending") => {
            v.push("payment", "a till sale is paid at the till");
            false
        }
        Some(_) => {
            v.push("payment", "paid or pending");
            false
        }
    };
    if body.coupon_codes.len() > 10 {
        v.push("coupon_codes", "at most 10 coupons");
    }
    if body.points_to_redeem < 0 {
        v.push("points_to_redeem", "not negative");
    }
    let placed_at = match &body.placed_at {
        Some(s) => v.check("placed_at", parse_time("", s)).unwrap_or(now),
        None => now,
    };
    if placed_at > now + MAX_CLOCK_SKEW_MS {
        v.push("placed_at", "in the future");
    }
    let fulfillment = match &body.fulfillment {
        None => None,
        Some(f) => match f.kind.as_str() {
            "in_store" => None,
            _ if orders::TILL_CHANNELS.contains(&channel.as_str()) => {
                v.push("fulfillment.type", "a till sale is fulfilled in the store");
                None
            }
            "pickup" => match &f.store_id {
                Some(s) if !s.is_empty() => Some(ronghe_domain::stock::Fulfillment::Pickup { store_id: s.clone() }),
                _ => {
                    v.push("fulfillment.store_id", "the store where the shopper collects");
                    None
                }
            },
            "delivery" => match &f.address {
                Some(a) if (-90.0..=90.0).contains(&a.lat) && (-180.0..=180.0).contains(&a.lng) => {
                    Some(ronghe_domain::stock::Fulfillment::Delivery {
                        lat: a.lat,
                        lng: a.lng,
                        allow_split: f.allow_split,
                    })
                }
                _ => {
                    v.push("fulfillment.address", "{lat, lng} of the delivery address");
                    None
                }
            },
            _ => {
                v.push("fulfillment.type", "in_store, pickup or delivery");
                None
            }
        },
    };
    v.finish()?;
    Ok(NewOrder {
        order_ref,
        channel,
        store_id,
        member_id: body.member_id,
        associate_id: body.associate_id,
        lines,
        points_to_redeem: body.points_to_redeem,
        coupon_codes: body.coupon_codes.iter().map(|c| c.trim().to_ascii_uppercase()).collect(),
        placed_at,
        awaiting_payment,
        fulfillment,
    })
}

/// Record an order from any channel
///
/// Priced from the catalogue and the loyalty programme in force at `placed_at`; the order,
/// its points redeemed and earned commit together or not at all. A second order with the
/// same (channel, store_id, order_ref) returns the first (200) and changes nothing.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = OrderIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "replay-safe retries")),
    responses((status = 201, body = OrderView, description = "recorded"), (status = 200, body = OrderView, description = "already recorded under this order_ref"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn place(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<OrderIn>,
) -> ApiResult<(StatusCode, axum::Json<OrderView>)> {
    caller.require(Action::PlaceOrder)?;
    let order = parse_order(&state, &caller, body)?;
    let now = state.now();
    let p = caller.0.clone();
    let (o, created) = state
        .store
        .write(move |tx, _| {
            let r = orders::place(tx, &order, now)?;
            audit_admin(tx, &p, now, "order.place", Some(&r.0.id))?;
            Ok(r)
        })
        .await?;
    state.refresh_members(o.member_id.clone()).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(order_view_for(&caller, &o))))
}

/// Price a basket with no effects
///
/// The same pricing as an order (the till shows the total before payment); nothing is stored.
#[utoipa::path(post, path = "/v1/orders/quote", tag = "orders", request_body = OrderIn,
    responses((status = 200, body = OrderView), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn quote(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<OrderIn>,
) -> ApiResult<axum::Json<OrderView>> {
    caller.require(Action::PlaceOrder)?;
    let o = parse_order(&state, &caller, body)?;
    let o2 = o.clone();
    let (member, version, lines, priced) = state.store.read_short(move |tx, _| orders::prepare(tx, &o2)).await?;
    Ok(axum::Json(OrderView {
        id: None,
        status: None,
        order_ref: o.order_ref,
        channel: o.channel,
        store_id: o.store_id,
        member_id: member,
        associate_id: o.associate_id,
        placed_at: rfc3339(o.placed_at),
        program_version: version,
        lines: line_views(&lines),
        subtotal_fen: priced.subtotal_fen,
        discount_fen: priced.discount_fen,
        points_redeemed: priced.points_redeemed,
        points_value_fen: priced.points_value_fen,
        payable_fen: priced.payable_fen,
        points_earned: priced.points_earned,
        coupons: coupon_views(&priced.coupons),
        allocations: Vec::new(),
        route_reason: None,
        pickup_code: None,
    }))
}

/// Read an order
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<OrderView>> {
    caller.require(Action::ReadOrder)?;
    let o = state
        .store
        .read_short(move |tx, _| orders::get(tx, &id))
        .await?
        .ok_or_else(|| DomainError::not_found("order"))?;
    Ok(axum::Json(order_view_for(&caller, &o)))
}

/// A scoped key acts only on its own channel's or store's orders.
fn own_order(p: &ronghe_domain::auth::Principal, o: &Order, verb: &str) -> ronghe_store::Result<()> {
    let other_channel = p.channel.as_ref().is_some_and(|c| *c != o.channel);
    let other_store = p.store_id.as_ref().is_some_and(|s| Some(s) != o.store_id.as_ref());
    if other_channel || other_store {
        let msg = format!("this key may {verb} only its own channel's or store's orders");
        return Err(DomainError::new(ronghe_domain::Code::Forbidden, msg).into());
    }
    Ok(())
}

/// Run `command` on an order the caller's key may act on (its own channel's or store's),
/// audited for admins as `order.{verb}`, in one transaction.
async fn on_own_order(
    state: &AppState,
    caller: &Caller,
    id: String,
    verb: &'static str,
    command: fn(&mut dyn ronghe_store::db::Tx, &str, i64) -> ronghe_store::Result<Order>,
) -> ApiResult<axum::Json<OrderView>> {
    let now = state.now();
    let p = caller.0.clone();
    let o = state
        .store
        .write(move |tx, _| {
            let existing = orders::get(tx, &id)?.ok_or_else(|| DomainError::not_found("order"))?;
            own_order(&p, &existing, verb)?;
            let o = command(tx, &id, now)?;
            audit_admin(tx, &p, now, &format!("order.{verb}"), Some(&id))?;
            Ok(o)
        })
        .await?;
    state.refresh_members(o.member_id.clone()).await?;
    Ok(axum::Json(order_view(&o)))
}

/// Cancel an order that has not been fulfilled
///
/// Redeemed points come back and earned points are taken back, in one transaction. A till
/// sale is complete at once: undo it with a return.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<OrderView>> {
    caller.require(Action::CancelOrder)?;
    on_own_order(&state, &caller, id, "cancel", orders::cancel).await
}

// ---------- points ----------

#[derive(Debug, Deserialize, IntoParams)]
pub struct LedgerQuery {
    /// Page backwards: the smallest entry id of the previous page.
    pub before: Option<i64>,
    /// 1–500, default 50.
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntryView {
    pub id: i64,
    pub delta: i64,
    /// earn, redeem, cancel_earn, cancel_redeem, adjustment
    pub reason: String,
    pub ref_type: String,
    pub ref_id: String,
    pub note: Option<String>,
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PendingView {
    pub order_id: String,
    pub points: i64,
    pub available_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExpiringView {
    pub expires_at: String,
    pub points: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PointsView {
    pub member_id: String,
    /// Always the sum of the ledger; never negative.
    pub balance: i64,
    /// The member's tier, if the programme has tiers and the member reached one.
    pub tier: Option<String>,
    /// What the member paid over the programme's tier window (what tiers are reached with).
    pub tier_spend_fen: i64,
    /// Points held that will expire, soonest first.
    pub expiring: Vec<ExpiringView>,
    /// Points earned online that become usable at the end of the return window (not in the balance yet).
    pub pending: Vec<PendingView>,
    /// Newest first.
    pub ledger: Vec<LedgerEntryView>,
    pub next_before: Option<i64>,
}

/// Read a member's points: balance and ledger
#[utoipa::path(get, path = "/v1/members/{id}/points", tag = "loyalty", params(("id" = String, Path), LedgerQuery),
    responses((status = 200, body = PointsView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_points(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LedgerQuery>,
) -> ApiResult<axum::Json<PointsView>> {
    caller.require(Action::ReadMember)?;
    points_view(&state, id, q).await
}

async fn points_view(state: &AppState, id: String, q: LedgerQuery) -> ApiResult<axum::Json<PointsView>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(DomainError::field("limit", "1 to 500").into());
    }
    let now = state.now();
    let (id, balance, entries, expiring, tier, tier_spend_fen, pending) = state
        .store
        .read_short(move |tx, _| {
            let id = members::resolve(tx, &id)?;
            let b = points::balance(tx, &id)?;
            let e = points::ledger(tx, &id, q.before, limit)?;
            let x = points::expiring(tx, &id)?;
            let pend = points::pending(tx, &id)?;
            let tier = ronghe_store::tiers::current(tx, &id)?;
            let (_, program, _) = loyalty::at(tx, now)?;
            let spend = ronghe_store::tiers::spend(tx, &id, &program, now)?;
            Ok((id, b, e, x, tier, spend, pend))
        })
        .await?;
    let next_before = (entries.len() as i64 == limit).then(|| entries.last().map(|e| e.id)).flatten();
    Ok(axum::Json(PointsView {
        member_id: id,
        balance,
        tier,
        tier_spend_fen,
        pending: pending
            .into_iter()
            .map(|(order_id, points, at)| PendingView { order_id, points, available_at: rfc3339(at) })
            .collect(),
        expiring: expiring.into_iter().map(|(at, points)| ExpiringView { expires_at: rfc3339(at), points }).collect(),
        ledger: entries
            .into_iter()
            .map(|e| LedgerEntryView {
                id: e.id,
                delta: e.delta,
                reason: e.reason,
                ref_type: e.ref_type,
                ref_id: e.ref_id,
                note: e.note,
                at: rfc3339(e.at),
            })
            .collect(),
        next_before,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AdjustmentIn {
    /// Positive to credit, negative to debit (never below a zero balance).
    pub points: i64,
    /// Mandatory: why (goodwill, correction…).
    pub reason: String,
}

/// Adjust a member's points (admin)
///
/// A ledger entry with a mandatory reason; a debit may not take the balance below zero.
#[utoipa::path(post, path = "/v1/members/{id}/points/adjustments", tag = "loyalty", params(("id" = String, Path)), request_body = AdjustmentIn,
    responses((status = 200, body = PointsView), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn adjust_points(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<AdjustmentIn>,
) -> ApiResult<axum::Json<PointsView>> {
    caller.require(Action::AdjustPoints)?;
    let mut v = Validator::new();
    if body.points == 0 || body.points.abs() > 100_000_000 {
        v.push("points", "non-zero, at most 100,000,000 either way");
    }
    let reason = body.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 200 {
        v.push("reason", "1 to 200 characters: say why");
    }
    v.finish()?;
    let now = state.now();
    let p = caller.0.clone();
    let id = state
        .store
        .write(move |tx, _| {
            // resolve locks the member's row (PostgreSQL), so balance checks cannot interleave.
            let m = members::resolve(tx, &id)?;
            let adj_id = format!("adj_{now:x}");
            points::append(tx, &m, body.points, "adjustment", "adjustment", &adj_id, Some(&reason), now)?;
            audit_admin(tx, &p, now, "points.adjust", Some(&m))?;
            Ok(m)
        })
        .await?;
    state.refresh_members([id.clone()]).await?;
    points_view(&state, id, LedgerQuery { before: None, limit: None }).await
}

// ---------- returns ----------

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReturnLineBody {
    /// The order line's `line_id`…
    pub line_id: Option<i64>,
    /// …or its SKU, when that names exactly one line.
    pub sku: Option<String>,
    pub qty: i64,
    /// Came back damaged: received and written off instead of restocked.
    #[serde(default)]
    pub damaged: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReturnIn {
    pub lines: Vec<ReturnLineBody>,
    /// Where the goods are received (stock returns there, with the shared stock pool).
    pub location_id: Option<String>,
    /// The store taking the return (a store key's own); absent for returns by post.
    pub store_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnLineView {
    pub line_id: i64,
    pub qty: i64,
    pub refund_fen: i64,
    pub points_taken: i64,
    pub points_given: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnView {
    pub id: String,
    pub order_id: String,
    /// The order's status after the return: `returned` once every unit came back.
    pub order_status: String,
    pub store_id: Option<String>,
    pub location_id: Option<String>,
    /// Cash to give back: what the returned lines paid, less `deduction_fen`.
    pub refund_fen: i64,
    /// Earned points the member had already spent, charged at the redemption value.
    pub deduction_fen: i64,
    pub points_taken: i64,
    pub points_given: i64,
    pub shortfall_points: i64,
    /// Coupons given back (whole order returned, coupon still valid).
    pub coupons_restored: Vec<String>,
    pub lines: Vec<ReturnLineView>,
}

/// Return an order, fully or in part, at any store
///
/// Refunds what the returned lines paid (after their coupon and points shares), takes back the
/// points they earned and gives back the points they redeemed; if the member already spent the
/// points to take back, the shortfall is deducted from the refund. Returning more than was
/// bought is refused. A whole return gives back coupons still valid.
#[utoipa::path(post, path = "/v1/orders/{id}/returns", tag = "orders", params(("id" = String, Path)), request_body = ReturnIn,
    responses((status = 201, body = ReturnView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn create_return(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ReturnIn>,
) -> ApiResult<(StatusCode, axum::Json<ReturnView>)> {
    caller.require(Action::PlaceOrder)?;
    let store_id = match (&caller.0.store_id, body.store_id) {
        (Some(own), Some(asked)) if *own != asked => {
            return Err(ApiError::forbidden(format!("this key takes returns only for store {own}")));
        }
        (Some(own), _) => Some(own.clone()),
        (None, s) => s,
    };
    if body.lines.is_empty() || body.lines.len() > 200 {
        return Err(DomainError::field("lines", "1 to 200 lines").into());
    }
    let lines: Vec<ronghe_store::returns::ReturnLineIn> = body
        .lines
        .into_iter()
        .map(|l| ronghe_store::returns::ReturnLineIn { line_no: l.line_id, sku: l.sku, qty: l.qty, damaged: l.damaged })
        .collect();
    let now = state.now();
    let p = caller.0.clone();
    let location = body.location_id;
    let (r, member) = state
        .store
        .write(move |tx, _| {
            let r = ronghe_store::returns::create(tx, &id, &lines, store_id.as_deref(), location.as_deref(), now)?;
            audit_admin(tx, &p, now, "order.return", Some(&id))?;
            let member = orders::get(tx, &id)?.and_then(|o| o.member_id);
            Ok((r, member))
        })
        .await?;
    state.refresh_members(member).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ReturnView {
            lines: r
                .lines
                .iter()
                .map(|l| ReturnLineView {
                    line_id: l.line_no,
                    qty: l.qty,
                    refund_fen: l.refund_fen,
                    points_taken: l.points_taken,
                    points_given: l.points_given,
                })
                .collect(),
            id: r.id,
            order_id: r.order_id,
            order_status: r.order_status,
            store_id: r.store_id,
            location_id: r.location_id,
            refund_fen: r.refund_fen,
            deduction_fen: r.deduction_fen,
            points_taken: r.points_taken,
            points_given: r.points_given,
            shortfall_points: r.shortfall_points,
            coupons_restored: r.coupons_restored,
        }),
    ))
}

// ---------- offline batches ----------

#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchItemIn {
    /// The order's own idempotency key: a resent batch, or a batch resent after half of it was
    /// applied, changes nothing twice.
    pub idempotency_key: String,
    /// The order, as `POST /v1/orders` takes it.
    #[schema(value_type = OrderIn)]
    pub order: serde_json::Value,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchIn {
    pub orders: Vec<BatchItemIn>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchFlag {
    /// `offline_limit_exceeded` or `redemption_not_covered`: the redemption was cut; review it.
    pub code: String,
    pub points_asked: i64,
    pub points_redeemed: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    pub idempotency_key: String,
    /// The HTTP status this order would have had on its own (201, 200 for a replay, 4xx).
    pub status: u16,
    /// The order as `GET /v1/orders/{id}` shows it.
    #[schema(value_type = Option<Object>)]
    pub order: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub problem: Option<serde_json::Value>,
    pub flag: Option<BatchFlag>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchOut {
    /// One result per order, in input order.
    pub results: Vec<BatchResult>,
}

/// Upload the orders a till took while offline
///
/// One outcome per order, in input order; each order keeps its own idempotency key and
/// `placed_at`. Redemption taken offline is capped by the offline limit and by the member's
/// balance: an order is recorded without the uncovered part and flagged for review, never
/// overdrawn.
#[utoipa::path(post, path = "/v1/orders/batch", tag = "orders", request_body = BatchIn,
    responses((status = 200, body = BatchOut), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn batch(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<BatchIn>,
) -> ApiResult<axum::Json<BatchOut>> {
    caller.require(Action::PlaceOrder)?;
    if body.orders.is_empty() || body.orders.len() > 1000 {
        return Err(DomainError::field("orders", "1 to 1,000 orders").into());
    }
    let mut results = Vec::with_capacity(body.orders.len());
    for (i, item) in body.orders.into_iter().enumerate() {
        let key = item.idempotency_key.trim().to_string();
        if key.is_empty() || key.len() > 255 {
            return Err(DomainError::field(format!("orders[{i}].idempotency_key"), "1 to 255 characters").into());
        }
        // Hashed as canonical JSON, like the body of a single POST with the same key.
        let raw = serde_json::to_vec(&item.order).unwrap_or_default();
        let parsed = serde_json::from_value::<OrderIn>(item.order)
            .map_err(|e| ApiError::from(DomainError::field(format!("orders[{i}].order"), e.to_string())));
        let scope = crate::middleware::scope(&caller.0.key_id, "POST", "/v1/orders", &key);
        let body_hash = crate::middleware::body_hash(&raw);
        let result = match parsed.and_then(|o| parse_order(&state, &caller, o)) {
            Err(e) => Err(e),
            Ok(order) => {
                let now = state.now();
                let limit = order
                    .store_id
                    .as_ref()
                    .and_then(|s| state.config.offline_points_limits_by_store.get(s))
                    .copied()
                    .unwrap_or(state.config.offline_points_limit);
                state
                    .store
                    .write(move |tx, kr| {
                        use ronghe_store::idempotency::{self, Begin};
                        match idempotency::begin(tx, kr, &scope, &body_hash, now)? {
                            Begin::Replay { status, body } => return Ok(Err((status, body))),
                            Begin::DifferentBody | Begin::InFlight => {
                                return Err(DomainError::new(
                                    ronghe_domain::Code::IdempotencyConflict,
                                    "this idempotency_key was used for another order",
                                )
                                .into());
                            }
                            Begin::Fresh => {}
                        }
                        let (o, created, flag) = orders::place_offline(tx, &order, limit, now)?;
                        let status: u16 = if created { 201 } else { 200 };
                        let view = serde_json::to_vec(&order_view(&o)).unwrap_or_default();
                        idempotency::finish(tx, kr, &scope, status, &view, o.member_id.as_deref())?;
                        Ok(Ok((status, o, flag)))
                    })
                    .await
                    .map_err(ApiError::from)
            }
        };
        if let Ok(Ok((_, o, _))) = &result
            && let Err(e) = state.refresh_members(o.member_id.clone()).await
        {
            tracing::warn!(code = %e.error.code, "audience refresh after an offline order failed");
        }
        results.push(match result {
            Ok(Ok((status, o, flag))) => BatchResult {
                idempotency_key: key,
                status,
                order: serde_json::to_value(order_view(&o)).ok(),
                problem: None,
                flag: flag.map(|f| BatchFlag { code: f.code.into(), points_asked: f.points_asked, points_redeemed: f.points_redeemed }),
            },
            Ok(Err((status, body))) => BatchResult {
                idempotency_key: key,
                status,
                order: serde_json::from_slice::<serde_json::Value>(&body).ok(),
                problem: None,
                flag: None,
            },
            Err(e) => BatchResult {
                idempotency_key: key,
                status: crate::problem::status(e.error.code).as_u16(),
                order: None,
                problem: Some(serde_json::json!({"code": e.error.code.as_str(), "detail": e.error.message, "errors": e.error.errors})),
                flag: None,
            },
        });
    }
    Ok(axum::Json(BatchOut { results }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExpiryRunView {
    /// Pending points whose return window ended, now usable.
    pub pending_matured: i64,
    pub lots_expired: i64,
    pub points_expired: i64,
}

/// Mature pending points and expire the points whose time has come
///
/// Pending points whose return window ended become usable; then each lot past its expiry loses
/// what is left of it, with an `expire` ledger entry. Safe to repeat; the server also runs it
/// every hour.
#[utoipa::path(post, path = "/v1/loyalty/expiry-run", tag = "loyalty",
    responses((status = 200, body = ExpiryRunView), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn expiry_run(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<ExpiryRunView>> {
    caller.require(Action::AdjustPoints)?;
    let now = state.now();
    let p = caller.0.clone();
    let (matured, lots, pts) = state
        .store
        .write(move |tx, _| {
            let matured = points::mature(tx, now)?;
            let (lots, pts) = points::expire(tx, now)?;
            audit_admin(tx, &p, now, "points.expiry_run", None)?;
            Ok((matured, lots, pts))
        })
        .await?;
    Ok(axum::Json(ExpiryRunView { pending_matured: matured, lots_expired: lots, points_expired: pts }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TierReviewView {
    pub reviewed: i64,
    pub changed: i64,
}

/// Review tiers (downgrades happen here)
///
/// Every member with a tier gets the tier their spend over the window reaches now: up or down.
/// Upgrades also happen at once when an order lifts the spend. Safe to repeat.
#[utoipa::path(post, path = "/v1/loyalty/tier-review", tag = "loyalty",
    responses((status = 200, body = TierReviewView), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn tier_review(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<TierReviewView>> {
    caller.require(Action::AdjustPoints)?;
    let now = state.now();
    let p = caller.0.clone();
    let (reviewed, changed) = state
        .store
        .write(move |tx, _| {
            let r = ronghe_store::tiers::review(tx, now)?;
            audit_admin(tx, &p, now, "loyalty.tier_review", None)?;
            Ok(r)
        })
        .await?;
    Ok(axum::Json(TierReviewView { reviewed, changed }))
}

/// Confirm the payment of an order created awaiting payment
///
/// The order becomes `placed` and earns its points (and may lift the member's tier).
#[utoipa::path(post, path = "/v1/orders/{id}/pay", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn pay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<OrderView>> {
    caller.require(Action::PlaceOrder)?;
    on_own_order(&state, &caller, id, "pay", orders::pay).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimeoutsView {
    /// Orders cancelled for want of payment.
    pub cancelled: Vec<String>,
}

/// Cancel orders left unpaid past the payment timeout
///
/// Gives back their redeemed points and coupons. The server runs this every minute; it is
/// safe to repeat.
#[utoipa::path(post, path = "/v1/orders/payment-timeouts", tag = "orders",
    responses((status = 200, body = TimeoutsView), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn payment_timeouts(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<TimeoutsView>> {
    caller.require(Action::AdjustPoints)?;
    let now = state.now();
    let timeout = state.config.payment_timeout_ms;
    let cancelled = state.store.write(move |tx, _| orders::cancel_unpaid(tx, timeout, now)).await?;
    Ok(axum::Json(TimeoutsView { cancelled }))
}

/// Who may hand over or ship an online order: admins, the order's own channel, and the store
/// keys of the locations its goods are reserved at.
fn at_fulfilling_location(p: &ronghe_domain::auth::Principal, o: &Order) -> ronghe_store::Result<()> {
    let ok = match (&p.store_id, &p.channel) {
        (Some(store), _) => o.allocations.iter().any(|(a, _)| &a.location_id == store),
        (None, Some(channel)) => *channel == o.channel,
        (None, None) => p.role == Role::Admin,
    };
    if ok {
        Ok(())
    } else {
        Err(DomainError::new(ronghe_domain::Code::Forbidden, "this order is not fulfilled here").into())
    }
}

async fn fulfilment_step(
    state: &AppState,
    caller: &Caller,
    id: String,
    verb: &'static str,
    step: impl Fn(&mut dyn ronghe_store::db::Tx, &str, i64) -> ronghe_store::Result<Order> + Send + Sync + 'static,
) -> ApiResult<axum::Json<OrderView>> {
    caller.require(Action::PlaceOrder)?;
    let now = state.now();
    let p = caller.0.clone();
    let o = state
        .store
        .write(move |tx, _| {
            let existing = orders::get(tx, &id)?.ok_or_else(|| DomainError::not_found("order"))?;
            at_fulfilling_location(&p, &existing)?;
            let o = step(tx, &id, now)?;
            audit_admin(tx, &p, now, &format!("order.{verb}"), Some(&id))?;
            Ok(o)
        })
        .await?;
    state.refresh_members(o.member_id.clone()).await?;
    Ok(axum::Json(order_view_for(caller, &o)))
}

/// Mark a pick-up's goods as picked and set aside
#[utoipa::path(post, path = "/v1/orders/{id}/picked", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn picked(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<OrderView>> {
    fulfilment_step(&state, &caller, id, "picked", |tx, id, now| {
        if ronghe_store::stock::pick(tx, id, now)? == 0 {
            return Err(DomainError::new(ronghe_domain::Code::Conflict, "nothing left to pick for this order").into());
        }
        orders::get(tx, id)?.ok_or_else(|| DomainError::not_found("order").into())
    })
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct HandoverIn {
    /// The code the shopper shows.
    pub pickup_code: String,
}

/// Hand a pick-up over to the shopper against its code
///
/// The store's key checks the code; the goods leave the shelf (on hand and reserved go down)
/// and the order is `fulfilled`.
#[utoipa::path(post, path = "/v1/orders/{id}/handover", tag = "orders", params(("id" = String, Path)), request_body = HandoverIn,
    responses((status = 200, body = OrderView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn handover(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<HandoverIn>,
) -> ApiResult<axum::Json<OrderView>> {
    let code = body.pickup_code;
    fulfilment_step(&state, &caller, id, "handover", move |tx, id, now| orders::fulfil_online(tx, id, Some(&code), now))
        .await
}

/// Ship a delivery order: its goods leave the locations they were reserved at
#[utoipa::path(post, path = "/v1/orders/{id}/ship", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn ship(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<OrderView>> {
    fulfilment_step(&state, &caller, id, "ship", |tx, id, now| {
        let o = orders::get(tx, id)?.ok_or_else(|| DomainError::not_found("order"))?;
        if o.pickup_code.is_some() {
            return Err(DomainError::new(ronghe_domain::Code::Conflict, "a pick-up is handed over, not shipped").into());
        }
        orders::fulfil_online(tx, id, None, now)
    })
    .await
}

/// Cancel pick-ups not collected within the pick-up window
///
/// Their points, coupons and reservations come back. The server runs this every minute
/// (`--pickup-expiry-hours`, default 72); it is safe to repeat.
#[utoipa::path(post, path = "/v1/orders/pickup-expiry", tag = "orders",
    responses((status = 200, body = TimeoutsView), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn pickup_expiry(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<TimeoutsView>> {
    caller.require(Action::AdjustPoints)?;
    let now = state.now();
    let deadline = now - state.config.pickup_expiry_ms;
    let cancelled = state.store.write(move |tx, _| orders::expire_pickups(tx, deadline, now)).await?;
    Ok(axum::Json(TimeoutsView { cancelled }))
}
