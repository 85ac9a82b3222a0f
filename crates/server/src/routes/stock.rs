//! One pool of stock over HTTP: locations, ERP/WMS stock pushes (snapshots or deltas with
//! sequence numbers), stock of a SKU across the pool, and availability near a point.

use crate::AppState;
use crate::extract::{Caller, Json};
use crate::problem::{ApiResult, Problem};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use ronghe_domain::DomainError;
use ronghe_domain::auth::Action;
use ronghe_domain::error::Validator;
use ronghe_domain::stock::{self, Change, Location, LocationKind};
use ronghe_store::stock as store_stock;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct LocationIn {
    pub id: String,
    pub name: String,
    /// store, regional_warehouse or central_warehouse.
    pub kind: String,
    pub lat: f64,
    pub lng: f64,
    #[serde(default)]
    pub pickup: bool,
    #[serde(default)]
    pub ship_from_store: bool,
    #[serde(default)]
    pub delivery_radius_km: f64,
    /// Units of each SKU held back from online sales (default 0).
    #[serde(default)]
    pub safety_stock: i64,
    /// e.g. `09:00-22:00`.
    pub opening_hours: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LocationView {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub lat: f64,
    pub lng: f64,
    pub pickup: bool,
    pub ship_from_store: bool,
    pub delivery_radius_km: f64,
    pub safety_stock: i64,
    pub opening_hours: Option<String>,
}

fn location_view(l: &Location) -> LocationView {
    LocationView {
        id: l.id.clone(),
        name: l.name.clone(),
        kind: l.kind.as_str().into(),
        lat: l.lat,
        lng: l.lng,
        pickup: l.pickup,
        ship_from_store: l.ship_from_store,
        delivery_radius_km: l.delivery_radius_km,
        safety_stock: l.safety_stock,
        opening_hours: l.opening_hours.clone(),
    }
}

/// Create or replace a location (store, regional or central warehouse)
#[utoipa::path(post, path = "/v1/locations", tag = "stock", request_body = LocationIn,
    responses((status = 201, body = LocationView, description = "created"), (status = 200, body = LocationView, description = "replaced"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn put_location(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<LocationIn>,
) -> ApiResult<(StatusCode, axum::Json<LocationView>)> {
    caller.require(Action::ManageStock)?;
    let kind = LocationKind::parse(&body.kind)
        .ok_or_else(|| DomainError::field("kind", "store, regional_warehouse or central_warehouse"))?;
    let l = Location {
        id: body.id.trim().to_string(),
        name: body.name,
        kind,
        lat: body.lat,
        lng: body.lng,
        pickup: body.pickup,
        ship_from_store: body.ship_from_store,
        delivery_radius_km: body.delivery_radius_km,
        safety_stock: body.safety_stock,
        opening_hours: body.opening_hours,
    };
    l.validate()?;
    let now = state.now();
    let saved = l.clone();
    let created = state.store.write(move |tx, _| store_stock::put_location(tx, &saved, now)).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, axum::Json(location_view(&l))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LocationList {
    pub locations: Vec<LocationView>,
}

/// List locations
#[utoipa::path(get, path = "/v1/locations", tag = "stock",
    responses((status = 200, body = LocationList), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list_locations(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<LocationList>> {
    caller.require(Action::ReadStock)?;
    let all = state.store.read(|tx, _| store_stock::locations(tx)).await?;
    Ok(axum::Json(LocationList { locations: all.iter().map(location_view).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InventoryIn {
    /// `snapshot` (items give `on_hand`) or `delta` (items give `delta`).
    pub mode: String,
    /// Who sends it (an ERP, a WMS, a stock-take app); sequence numbers rise per source.
    pub source: Option<String>,
    /// The movements' reason: erp_sync (default), count (a stock-take), damage, transfer, return.
    pub reason: Option<String>,
    pub items: Vec<InventoryItemIn>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InventoryItemIn {
    pub location_id: String,
    pub sku: String,
    pub on_hand: Option<i64>,
    pub delta: Option<i64>,
    /// Rises per (source, location, SKU); an older one is refused as stale.
    pub seq: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InventoryResult {
    pub location_id: String,
    pub sku: String,
    /// applied, stale or unknown_location.
    pub status: String,
    pub on_hand: Option<i64>,
    pub last_seq: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InventoryAnswer {
    pub results: Vec<InventoryResult>,
}

/// Push stock from an ERP or WMS: snapshots or deltas, a result per item
///
/// Each item applies on its own: a stale `seq` is refused (not applied) and reported, an
/// unknown location too; the others are applied and journaled as movements.
#[utoipa::path(put, path = "/v1/inventory", tag = "stock", request_body = InventoryIn,
    responses((status = 200, body = InventoryAnswer), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn put_inventory(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<InventoryIn>,
) -> ApiResult<axum::Json<InventoryAnswer>> {
    caller.require(Action::PushStock)?;
    let mut v = Validator::new();
    let snapshot = match body.mode.as_str() {
        "snapshot" => true,
        "delta" => false,
        _ => {
            v.push("mode", "snapshot or delta");
            true
        }
    };
    let reason = body.reason.unwrap_or_else(|| "erp_sync".into());
    if !["erp_sync", "count", "damage", "transfer", "return"].contains(&reason.as_str()) {
        v.push("reason", "erp_sync, count, damage, transfer or return");
    }
    if body.items.is_empty() || body.items.len() > 10_000 {
        v.push("items", "1 to 10,000 items");
    }
    let mut items = Vec::with_capacity(body.items.len());
    for (i, it) in body.items.iter().enumerate() {
        let change = match (snapshot, it.on_hand, it.delta) {
            (true, Some(n), None) if n >= 0 => Some(Change::Snapshot(n)),
            (false, None, Some(d)) => Some(Change::Delta(d)),
            (true, _, _) => {
                v.push(format!("items[{i}].on_hand"), "a snapshot item gives on_hand (not negative) and no delta");
                None
            }
            (false, _, _) => {
                v.push(format!("items[{i}].delta"), "a delta item gives delta and no on_hand");
                None
            }
        };
        if it.sku.is_empty() || it.location_id.is_empty() {
            v.push(format!("items[{i}]"), "location_id and sku are required");
        }
        if let Some(change) = change {
            items.push(store_stock::Item {
                location_id: it.location_id.clone(),
                sku: it.sku.clone(),
                change,
                seq: it.seq,
            });
        }
    }
    v.finish()?;
    let source = body.source.unwrap_or_else(|| caller.0.key_id.clone());
    let now = state.now();
    let keys: Vec<(String, String)> = items.iter().map(|i| (i.location_id.clone(), i.sku.clone())).collect();
    let results = state.store.write(move |tx, _| store_stock::update(tx, &source, &items, &reason, now)).await?;
    Ok(axum::Json(InventoryAnswer {
        results: keys
            .into_iter()
            .zip(results)
            .map(|((location_id, sku), r)| InventoryResult {
                location_id,
                sku,
                status: r.status.into(),
                on_hand: r.on_hand,
                last_seq: r.last_seq,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LevelView {
    pub location_id: String,
    pub on_hand: i64,
    pub reserved: i64,
    /// Available to promise online: on hand − reserved − safety stock.
    pub available: i64,
    /// On hand went below zero (till sales of goods the count missed): count it again.
    pub needs_count: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SkuStockView {
    pub sku: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    pub locations: Vec<LevelView>,
}

/// Stock of a SKU across the pool and per location
#[utoipa::path(get, path = "/v1/inventory/{sku}", tag = "stock", params(("sku" = String, Path)),
    responses((status = 200, body = SkuStockView), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_inventory(
    State(state): State<AppState>,
    caller: Caller,
    Path(sku): Path<String>,
) -> ApiResult<axum::Json<SkuStockView>> {
    caller.require(Action::ReadStock)?;
    let s = sku.clone();
    let levels = state.store.read_short(move |tx, _| store_stock::levels(tx, &s)).await?;
    let locations: Vec<LevelView> = levels
        .into_iter()
        .map(|(_, l)| LevelView {
            location_id: l.location_id,
            on_hand: l.on_hand,
            reserved: l.reserved,
            available: l.available,
            needs_count: l.on_hand < 0,
        })
        .collect();
    Ok(axum::Json(SkuStockView {
        sku,
        on_hand: locations.iter().map(|l| l.on_hand).sum(),
        reserved: locations.iter().map(|l| l.reserved).sum(),
        available: locations.iter().map(|l| l.available).sum(),
        locations,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AvailabilityQuery {
    pub sku: String,
    pub lat: f64,
    pub lng: f64,
    /// Only locations this close (default 50 km).
    pub radius_km: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AvailableAt {
    pub location_id: String,
    pub name: String,
    pub kind: String,
    pub distance_km: f64,
    pub available: i64,
    /// The shopper can collect here.
    pub pickup: bool,
    /// This location delivers to the point.
    pub delivery: bool,
    pub opening_hours: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AvailabilityView {
    pub sku: String,
    /// Locations with the SKU available online, nearest first.
    pub locations: Vec<AvailableAt>,
}

/// Where a SKU is available near a point, nearest first
#[utoipa::path(get, path = "/v1/availability", tag = "stock", params(AvailabilityQuery),
    responses((status = 200, body = AvailabilityView), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn availability(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AvailabilityQuery>,
) -> ApiResult<axum::Json<AvailabilityView>> {
    caller.require(Action::ReadStock)?;
    let radius = q.radius_km.unwrap_or(50.0);
    let mut v = Validator::new();
    if !(-90.0..=90.0).contains(&q.lat) {
        v.push("lat", "a latitude between -90 and 90");
    }
    if !(-180.0..=180.0).contains(&q.lng) {
        v.push("lng", "a longitude between -180 and 180");
    }
    if !(0.0..=20_000.0).contains(&radius) {
        v.push("radius_km", "0 to 20,000");
    }
    v.finish()?;
    let sku = q.sku.clone();
    let levels = state.store.read_short(move |tx, _| store_stock::levels(tx, &sku)).await?;
    let mut out: Vec<AvailableAt> = levels
        .into_iter()
        .filter(|(_, l)| l.available > 0)
        .map(|(loc, l)| {
            let d = stock::distance_km(q.lat, q.lng, loc.lat, loc.lng);
            AvailableAt {
                location_id: loc.id.clone(),
                name: loc.name.clone(),
                kind: loc.kind.as_str().into(),
                distance_km: (d * 100.0).round() / 100.0,
                available: l.available,
                pickup: loc.pickup,
                delivery: loc.delivers_to(d) || loc.kind != LocationKind::Store,
                opening_hours: loc.opening_hours.clone(),
            }
        })
        .filter(|a| a.distance_km <= radius)
        .collect();
    out.sort_by(|a, b| a.distance_km.total_cmp(&b.distance_km));
    Ok(axum::Json(AvailabilityView { sku: q.sku, locations: out }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TransferIn {
    pub from_location_id: String,
    pub to_location_id: String,
    pub items: Vec<TransferItemIn>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TransferItemIn {
    pub sku: String,
    pub qty: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransferView {
    pub id: String,
    pub from_location_id: String,
    pub to_location_id: String,
    /// requested, shipped (in transit, available nowhere) or received.
    pub status: String,
    pub items: Vec<TransferItemView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransferItemView {
    pub sku: String,
    pub qty: i64,
}

fn transfer_view(t: store_stock::Transfer) -> TransferView {
    TransferView {
        id: t.id,
        from_location_id: t.from_location,
        to_location_id: t.to_location,
        status: t.status,
        items: t.lines.into_iter().map(|(sku, qty)| TransferItemView { sku, qty }).collect(),
    }
}

/// A store key moves stock only from or to its own store.
fn own_end(caller: &Caller, ends: &[&str]) -> Result<(), crate::problem::ApiError> {
    match &caller.0.store_id {
        Some(s) if !ends.contains(&s.as_str()) => {
            Err(crate::problem::ApiError::forbidden(format!("this key moves stock only for store {s}")))
        }
        _ => Ok(()),
    }
}

/// Request a transfer between two locations (调货)
#[utoipa::path(post, path = "/v1/transfers", tag = "stock", request_body = TransferIn,
    responses((status = 201, body = TransferView), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn request_transfer(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<TransferIn>,
) -> ApiResult<(StatusCode, axum::Json<TransferView>)> {
    caller.require(Action::MoveStock)?;
    own_end(&caller, &[&body.from_location_id, &body.to_location_id])?;
    let mut v = Validator::new();
    if body.items.is_empty() || body.items.len() > 1000 {
        v.push("items", "1 to 1,000 items");
    }
    let mut lines: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for (i, it) in body.items.iter().enumerate() {
        if it.sku.is_empty() || !(1..=1_000_000).contains(&it.qty) {
            v.push(format!("items[{i}]"), "a sku and a quantity of 1 to 1,000,000");
        }
        *lines.entry(it.sku.clone()).or_default() += it.qty;
    }
    v.finish()?;
    let now = state.now();
    let id = format!("tr_{}", ronghe_store::members::new_member_id(now).trim_start_matches("m_"));
    let (from, to, lines) = (body.from_location_id, body.to_location_id, lines.into_iter().collect::<Vec<_>>());
    let t = state.store.write(move |tx, _| store_stock::request_transfer(tx, &id, &from, &to, &lines, now)).await?;
    Ok((StatusCode::CREATED, axum::Json(transfer_view(t))))
}

/// Read a transfer
#[utoipa::path(get, path = "/v1/transfers/{id}", tag = "stock", params(("id" = String, Path)),
    responses((status = 200, body = TransferView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_transfer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TransferView>> {
    caller.require(Action::ReadStock)?;
    Ok(axum::Json(transfer_view(state.store.read(move |tx, _| store_stock::transfer(tx, &id)).await?)))
}

/// Ship a transfer: the goods leave the source and are in transit
#[utoipa::path(post, path = "/v1/transfers/{id}/ship", tag = "stock", params(("id" = String, Path)),
    responses((status = 200, body = TransferView), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn ship_transfer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TransferView>> {
    transfer_step(
        &state,
        &caller,
        id,
        |t| &t.from_location,
        "only the sending store ships a transfer",
        store_stock::ship_transfer,
    )
    .await
}

/// Receive a transfer: the goods are on hand at the destination
#[utoipa::path(post, path = "/v1/transfers/{id}/receive", tag = "stock", params(("id" = String, Path)),
    responses((status = 200, body = TransferView), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn receive_transfer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TransferView>> {
    transfer_step(
        &state,
        &caller,
        id,
        |t| &t.to_location,
        "only the receiving store receives a transfer",
        store_stock::receive_transfer,
    )
    .await
}

/// Move a transfer on, by an admin or the store at `end` of it.
async fn transfer_step(
    state: &AppState,
    caller: &Caller,
    id: String,
    end: fn(&store_stock::Transfer) -> &String,
    refusal: &'static str,
    step: fn(&mut dyn ronghe_store::db::Tx, &str, i64) -> ronghe_store::Result<store_stock::Transfer>,
) -> ApiResult<axum::Json<TransferView>> {
    caller.require(Action::MoveStock)?;
    let now = state.now();
    let store = caller.0.store_id.clone();
    let t = state
        .store
        .write(move |tx, _| {
            let t = store_stock::transfer(tx, &id)?;
            if store.as_ref().is_some_and(|s| s != end(&t)) {
                return Err(DomainError::new(ronghe_domain::Code::Forbidden, refusal).into());
            }
            step(tx, &id, now)
        })
        .await?;
    Ok(axum::Json(transfer_view(t)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SubscriptionIn {
    pub member_id: String,
    pub sku: String,
    /// Wait for this store only (default: anywhere).
    pub location_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub id: i64,
}

/// Put a member on the back-in-stock list of a SKU (缺货预约)
///
/// When the SKU becomes available (there, or anywhere), a `back_in_stock` event is recorded on
/// the member's timeline and the subscription is marked notified; journeys message them.
#[utoipa::path(post, path = "/v1/back-in-stock", tag = "stock", request_body = SubscriptionIn,
    responses((status = 201, body = SubscriptionView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SubscriptionIn>,
) -> ApiResult<(StatusCode, axum::Json<SubscriptionView>)> {
    caller.require(Action::SubscribeStock)?;
    if body.sku.is_empty() {
        return Err(DomainError::field("sku", "required").into());
    }
    let now = state.now();
    let (member, sku, at) = (body.member_id, body.sku, body.location_id);
    let id = state.store.write(move |tx, _| store_stock::subscribe(tx, &member, &sku, at.as_deref(), now)).await?;
    Ok((StatusCode::CREATED, axum::Json(SubscriptionView { id })))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct MovementsQuery {
    pub location_id: Option<String>,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MovementsView {
    pub sku: String,
    /// Newest first: every change of on hand with its reason (sale, return, damage, transfer,
    /// count, erp_sync), the difference and what was on hand after it.
    #[schema(value_type = Vec<Object>)]
    pub movements: Vec<store_stock::Movement>,
}

/// The stock journal of a SKU
#[utoipa::path(get, path = "/v1/inventory/{sku}/movements", tag = "stock", params(("sku" = String, Path), MovementsQuery),
    responses((status = 200, body = MovementsView), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn movements(
    State(state): State<AppState>,
    caller: Caller,
    Path(sku): Path<String>,
    Query(q): Query<MovementsQuery>,
) -> ApiResult<axum::Json<MovementsView>> {
    caller.require(Action::ReadStock)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(DomainError::field("limit", "1 to 1000").into());
    }
    let s = sku.clone();
    let list = state.store.read(move |tx, _| store_stock::movements(tx, &s, q.location_id.as_deref(), limit)).await?;
    Ok(axum::Json(MovementsView { sku, movements: list }))
}
