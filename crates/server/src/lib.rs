//! The HTTP edge of Ronghe: axum routes by resource, authentication and roles, problem+json
//! errors, idempotency keys, rate limits, metrics, logs and the OpenAPI document. Handlers
//! validate at the door, call one store command, and shape the answer; no SQL lives here.

pub mod audience;
pub mod clock;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod problem;
pub mod ratelimit;
pub mod routes;
pub mod view;
pub mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use clock::Clock;
use extract::Caller;
use problem::ApiError;
use ratelimit::{Limit, RateLimiter};
use ronghe_domain::auth::{Principal, Role};
use ronghe_domain::{Code, Millis};
use ronghe_store::db::Tx;
use ronghe_store::{Store, audit, keys};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings of the HTTP layer (the CLI fills them from flags and environment).
#[derive(Debug, Clone)]
pub struct Config {
    pub max_body_bytes: usize,
    pub rate_limit: Limit,
    pub lookup_rate_limit: Limit,
    /// Roles that see personal data unmasked.
    pub unmasked_roles: Vec<Role>,
    pub idempotency_retention_days: i64,
    /// Points a till may redeem per order while offline (synced with `POST /v1/orders/batch`).
    pub offline_points_limit: i64,
    /// Per-store overrides of `offline_points_limit` (store id → points).
    pub offline_points_limits_by_store: HashMap<String, i64>,
    /// How long an online order may wait for payment before it is cancelled.
    pub payment_timeout_ms: i64,
    /// Web origins allowed to call the tracking endpoints from a browser (CORS); `*` for any.
    pub tracking_origins: Vec<String>,
    /// How long a pick-up waits for its shopper before it is cancelled.
    pub pickup_expiry_ms: i64,
    /// How often the webhook dispatcher runs a round (0: never by itself; tests run rounds
    /// with `POST /v1/webhooks/dispatch`).
    pub webhook_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body_bytes: 1 << 20,
            rate_limit: Limit { per_second: 2000.0, burst: 4000.0 },
            lookup_rate_limit: Limit { per_second: 10.0, burst: 100.0 },
            unmasked_roles: Role::ALL.iter().copied().filter(|r| r.unmasked_by_default()).collect(),
            idempotency_retention_days: 35,
            offline_points_limit: 5_000,
            offline_points_limits_by_store: HashMap::new(),
            payment_timeout_ms: 30 * 60_000,
            tracking_origins: Vec::new(),
            pickup_expiry_ms: 72 * 3_600_000,
            webhook_interval_ms: 1000,
        }
    }
}

pub struct Shared {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub config: Config,
    pub metrics: metrics::Metrics,
    pub limiter: RateLimiter,
    pub audience: Arc<audience::Audience>,
    pub webhook_client: reqwest::Client,
    key_cache: Mutex<HashMap<String, (Option<Principal>, Instant)>>,
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// How long a key's role is remembered before the store is asked again.
const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

impl AppState {
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: Config) -> Self {
        let limiter = RateLimiter::new(config.rate_limit, config.lookup_rate_limit);
        AppState(Arc::new(Shared {
            store,
            clock,
            config,
            metrics: metrics::Metrics::default(),
            limiter,
            audience: Arc::new(audience::Audience::default()),
            webhook_client: webhooks::client(),
            key_cache: Mutex::new(HashMap::new()),
        }))
    }

    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Bring the audience index up to date with members a write just changed.
    pub async fn refresh_members(&self, ids: impl IntoIterator<Item = String>) -> Result<(), ApiError> {
        self.audience.queue(ids.into_iter().collect());
        Ok(())
    }

    /// The principal of a presented key, remembered briefly so that a busy till does not
    /// cost a query per request.
    pub async fn principal(&self, secret: &str) -> Result<Option<Principal>, ApiError> {
        let hash = keys::hash(secret);
        if let Some((p, at)) = self.key_cache.lock().unwrap_or_else(|e| e.into_inner()).get(&hash)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(p.clone());
        }
        let s = secret.to_string();
        let p = self.store.read_short(move |tx, _| keys::find(tx, &s)).await?;
        let mut cache = self.key_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(hash, (p.clone(), Instant::now()));
        Ok(p)
    }

    /// Whether personal data is masked for this caller.
    pub fn masked(&self, caller: &Caller) -> bool {
        !self.config.unmasked_roles.contains(&caller.0.role)
    }

    /// Record a read of unmasked personal data in the audit log.
    pub async fn audit_unmasked(
        &self,
        caller: &Caller,
        view: &view::MemberView,
        action: &'static str,
    ) -> Result<(), ApiError> {
        if !view.reveals_personal_data() {
            return Ok(());
        }
        let now = self.now();
        let (p, target) = (caller.0.clone(), view.id.clone());
        self.store
            .write(move |tx, _| {
                audit::append(
                    tx,
                    now,
                    &p.key_id,
                    p.role.as_str(),
                    action,
                    Some(&target),
                    &serde_json::json!({"unmasked": true}),
                )
            })
            .await?;
        Ok(())
    }
}

/// Record an admin's action in the audit log, in the command's own transaction.
pub fn audit_admin(
    tx: &mut dyn Tx,
    p: &Principal,
    now: Millis,
    action: &str,
    target: Option<&str>,
) -> ronghe_store::Result<()> {
    if p.role == Role::Admin {
        audit::append(tx, now, &p.key_id, p.role.as_str(), action, target, &serde_json::json!({}))?;
    }
    Ok(())
}

pub fn router(state: AppState) -> Router {
    use routes::webhooks as webhooks_routes;
    use routes::{admin, audience, commerce, coupons, members, stock, system, tracking};
    let v1 = Router::new()
        .route("/v1/members", post(members::register))
        .route("/v1/members/lookup", post(members::lookup).get(members::lookup_get))
        .route("/v1/members/merge", post(members::merge))
        .route("/v1/members/{id}", get(members::get).patch(members::update).delete(members::erase))
        .route("/v1/members/{id}/consents", get(members::consents).put(members::change_consents))
        .route("/v1/members/{id}/export", get(members::export))
        .route("/v1/members/{id}/qr", post(members::qr_code))
        .route("/v1/attributes", get(admin::list_attributes))
        .route("/v1/attributes/{name}", put(admin::define_attribute))
        .route("/v1/products", put(commerce::put_products))
        .route("/v1/products/{sku}", get(commerce::get_product))
        .route("/v1/loyalty/program", put(commerce::put_program).get(commerce::get_program))
        .route("/v1/loyalty/expiry-run", post(commerce::expiry_run))
        .route("/v1/loyalty/tier-review", post(commerce::tier_review))
        .route("/v1/orders", post(commerce::place))
        .route("/v1/orders/quote", post(commerce::quote))
        .route("/v1/orders/batch", post(commerce::batch))
        .route("/v1/orders/{id}", get(commerce::get_order))
        .route("/v1/orders/{id}/cancel", post(commerce::cancel))
        .route("/v1/orders/{id}/pay", post(commerce::pay))
        .route("/v1/orders/{id}/picked", post(commerce::picked))
        .route("/v1/orders/{id}/handover", post(commerce::handover))
        .route("/v1/orders/{id}/ship", post(commerce::ship))
        .route("/v1/orders/payment-timeouts", post(commerce::payment_timeouts))
        .route("/v1/orders/pickup-expiry", post(commerce::pickup_expiry))
        .route("/v1/orders/{id}/returns", post(commerce::create_return))
        .route("/v1/members/{id}/points", get(commerce::get_points))
        .route("/v1/members/{id}/points/adjustments", post(commerce::adjust_points))
        .route("/v1/coupon-templates", post(coupons::create_template))
        .route("/v1/coupon-templates/{id}", get(coupons::get_template))
        .route("/v1/coupons", post(coupons::issue))
        .route("/v1/coupons/{code}", get(coupons::scan))
        .route("/v1/segments/preview", post(audience::preview))
        .route("/v1/segments", post(audience::create).get(audience::list))
        .route("/v1/segments/{id}", get(audience::get))
        .route("/v1/segments/{id}/members", get(audience::export))
        .route("/v1/tags", get(audience::list_tags))
        .route("/v1/tags/{name}", put(audience::define_tag))
        .route("/v1/tags/{name}/members", post(audience::tag_members))
        .route("/v1/analytics/rfm", get(audience::rfm))
        .route("/v1/analytics/rfm/config", get(audience::get_rfm_config).put(audience::put_rfm_config))
        .route("/v1/analytics/lifecycle", get(audience::lifecycle))
        .route("/v1/analytics/rebuild", post(audience::rebuild))
        .route(
            "/v1/analytics/lifecycle/config",
            get(audience::get_lifecycle_config).put(audience::put_lifecycle_config),
        )
        .route("/v1/analytics/dimensions/{dim}", get(audience::dimension))
        .route("/v1/data-quality", get(audience::data_quality))
        .route("/v1/events/export", get(audience::export_events))
        .route("/v1/events/retention", get(audience::get_retention).put(audience::put_retention))
        .route("/v1/members/{id}/events", get(audience::timeline))
        .route("/v1/locations", post(stock::put_location).get(stock::list_locations))
        .route("/v1/inventory", put(stock::put_inventory))
        .route("/v1/inventory/{sku}", get(stock::get_inventory))
        .route("/v1/inventory/{sku}/movements", get(stock::movements))
        .route("/v1/availability", get(stock::availability))
        .route("/v1/transfers", post(stock::request_transfer))
        .route("/v1/transfers/{id}", get(stock::get_transfer))
        .route("/v1/transfers/{id}/ship", post(stock::ship_transfer))
        .route("/v1/transfers/{id}/receive", post(stock::receive_transfer))
        .route("/v1/back-in-stock", post(stock::subscribe))
        .route("/v1/webhooks", post(webhooks_routes::subscribe).get(webhooks_routes::list))
        .route("/v1/webhooks/dispatch", post(webhooks_routes::dispatch))
        .route("/v1/webhooks/{id}", axum::routing::delete(webhooks_routes::unsubscribe))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks_routes::deliveries))
        .route("/v1/webhooks/deliveries/{id}/replay", post(webhooks_routes::replay))
        .route("/v1/keys", post(admin::create_key))
        .route("/v1/audit", get(admin::list_audit))
        // Layers run bottom-up: authenticate first, then idempotency.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), middleware::idempotency))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), middleware::authenticate));
    // The tracking API authenticates itself: SDKs put the write key in the body too.
    let tracking = Router::new()
        .route("/v1/batch", post(tracking::batch).options(tracking::preflight))
        .route("/v1/b", post(tracking::batch).options(tracking::preflight))
        .route("/v1/track", post(tracking::track).options(tracking::preflight))
        .route("/v1/t", post(tracking::track).options(tracking::preflight))
        .route("/v1/identify", post(tracking::identify).options(tracking::preflight))
        .route("/v1/i", post(tracking::identify).options(tracking::preflight))
        .route("/v1/page", post(tracking::page).options(tracking::preflight))
        .route("/v1/p", post(tracking::page).options(tracking::preflight))
        .route("/v1/screen", post(tracking::screen).options(tracking::preflight))
        .route("/v1/s", post(tracking::screen).options(tracking::preflight))
        .route("/v1/alias", post(tracking::alias).options(tracking::preflight))
        .route("/v1/a", post(tracking::alias).options(tracking::preflight))
        .route("/v1/group", post(tracking::group).options(tracking::preflight))
        .route("/v1/g", post(tracking::group).options(tracking::preflight));
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(system::openapi))
        .merge(v1)
        .merge(tracking)
        .fallback(|| async { ApiError::new(Code::RouteNotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "this route does not take that method")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::observe))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// Serve until `shutdown` resolves, then finish the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    spawn_housekeeping(state.clone());
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

/// Hourly: forget idempotency keys past their retention; expire points whose time has come.
fn spawn_housekeeping(state: AppState) {
    webhooks::spawn(state.clone());
    // Build the audience index now rather than at the first question.
    let first = state.clone();
    tokio::spawn(async move {
        if let Err(e) = first.audience.get(&first.store, first.now()).await {
            tracing::warn!(code = %e.error.code, "building the audience index failed");
        }
    });
    // Reload members queued by writes, so that the index never lags far behind.
    let flusher = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            if let Err(e) = flusher.audience.flush(&flusher.store, flusher.now()).await {
                tracing::warn!(code = %e.error.code, "refreshing the audience index failed");
            }
        }
    });
    let unpaid = state.clone();
    tokio::spawn(async move {
        // Every minute: cancel online orders left unpaid past the timeout.
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let (now, timeout) = (unpaid.now(), unpaid.config.payment_timeout_ms);
            match unpaid.store.write(move |tx, _| ronghe_store::orders::cancel_unpaid(tx, timeout, now)).await {
                Ok(ids) if !ids.is_empty() => tracing::info!(orders = ids.len(), "unpaid orders cancelled"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cancelling unpaid orders failed"),
            }
            let deadline = now - unpaid.config.pickup_expiry_ms;
            match unpaid.store.write(move |tx, _| ronghe_store::orders::expire_pickups(tx, deadline, now)).await {
                Ok(ids) if !ids.is_empty() => tracing::info!(orders = ids.len(), "uncollected pick-ups cancelled"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cancelling uncollected pick-ups failed"),
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let cutoff = state.now() - state.config.idempotency_retention_days * 86_400_000;
            let r = state.store.write(move |tx, _| ronghe_store::idempotency::purge(tx, cutoff)).await;
            match r {
                Ok(n) if n > 0 => {
                    tracing::info!(purged = n, "idempotency keys past retention removed")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "idempotency purge failed"),
            }
            let now = state.now();
            match state.store.write(move |tx, _| ronghe_store::points::mature(tx, now)).await {
                Ok(n) if n > 0 => tracing::info!(orders = n, "pending points matured"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "maturing pending points failed"),
            }
            match state.store.write(move |tx, _| ronghe_store::points::expire(tx, now)).await {
                Ok((lots, points)) if lots > 0 => tracing::info!(lots, points, "points expired"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "points expiry run failed"),
            }
            if let Err(e) = audience_housekeeping(&state).await {
                tracing::warn!(code = %e.error.code, "audience housekeeping failed");
            }
        }
    });
}

/// Hourly: drop events past their retention and record today's size of every segment. (The
/// index itself rebuilds at the first use of each new day, which also records lifecycle
/// transitions that time alone caused.)
pub async fn audience_housekeeping(state: &AppState) -> Result<(), ApiError> {
    let now = state.now();
    let today = ronghe_domain::calendar::day_of(now);
    let retention = {
        let guard = state.audience.get(&state.store, now).await?;
        guard.as_ref().map_or(400, |b| b.retention_days)
    };
    let before = ronghe_domain::calendar::start_of(today - retention as i32);
    loop {
        let n = state.store.write(move |tx, _| ronghe_store::events::purge(tx, before, 10_000)).await?;
        if n == 0 {
            break;
        }
        tracing::info!(events = n, "events past retention removed");
    }
    let all = state.store.read(|tx, _| ronghe_store::segments::list(tx)).await?;
    for s in all {
        let Ok(rule) = state.audience.parse(&state.store, now, &s.rule).await else { continue };
        let count = {
            let guard = state.audience.get(&state.store, now).await?;
            guard.as_ref().map_or(0, |b| b.index.count(&rule, today))
        };
        state.store.write(move |tx, _| ronghe_store::segments::record_size(tx, &s.id, today, count)).await?;
    }
    Ok(())
}
