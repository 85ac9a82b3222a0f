//! The customer data platform over HTTP: segments (preview, save, list, members export, size
//! history), tags (manual in bulk or CSV, rule tags), RFM and lifecycle (configuration,
//! analytics as of any date), built-in dimensions, data quality, and event exports.
//! Nothing here returns personal data: member ids and non-personal fields only.

use crate::AppState;
use crate::clock::rfc3339;
use crate::extract::{Caller, Json};
use crate::problem::{ApiError, ApiResult, Problem};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ronghe_domain::auth::Action;
use ronghe_domain::dims::Dim;
use ronghe_domain::lifecycle::LifecycleConfig;
use ronghe_domain::rfm::{Boundaries, Group, Raw, RfmConfig};
use ronghe_domain::{Code, DomainError, calendar};
use ronghe_store::{audience, events, segments, tags};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
pub struct RuleIn {
    /// A segment rule, e.g. `{"all":[{"tag":"vip"},{"rfm":{"r":[4,5]}}]}`.
    #[schema(value_type = Object)]
    pub rule: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountView {
    pub count: u64,
}

/// Count the members a rule matches, while editing it
///
/// Answered from the audience index, live: a write is reflected as soon as it is answered. A
/// rule naming an unknown tag, attribute or dimension is 422 with the field at fault.
#[utoipa::path(post, path = "/v1/segments/preview", tag = "segments", request_body = RuleIn,
    responses((status = 200, body = CountView), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<RuleIn>,
) -> ApiResult<axum::Json<CountView>> {
    caller.require(Action::ReadAudience)?;
    let now = state.now();
    let rule = state.audience.parse(&state.store, now, &body.rule).await?;
    let guard = state.audience.get(&state.store, now).await?;
    let count = guard.as_ref().map_or(0, |b| b.index.count(&rule, calendar::day_of(now)));
    Ok(axum::Json(CountView { count }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SegmentIn {
    pub name: String,
    #[schema(value_type = Object)]
    pub rule: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentView {
    pub id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub rule: serde_json::Value,
    /// Members matching now.
    pub count: u64,
    pub created_at: String,
    /// One size per day (the last measured that day), oldest first.
    pub sizes: Vec<SizeView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SizeView {
    pub date: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentList {
    pub segments: Vec<SegmentView>,
}

async fn segment_view(state: &AppState, s: segments::Segment, sizes: Vec<(i32, i64)>) -> ApiResult<SegmentView> {
    let now = state.now();
    let rule = state.audience.parse(&state.store, now, &s.rule).await.ok();
    let guard = state.audience.get(&state.store, now).await?;
    let count = match (rule, guard.as_ref()) {
        (Some(r), Some(b)) => b.index.count(&r, calendar::day_of(now)),
        _ => 0,
    };
    Ok(SegmentView {
        id: s.id,
        name: s.name,
        rule: s.rule,
        count,
        created_at: rfc3339(s.created_at),
        sizes: sizes.into_iter().map(|(d, c)| SizeView { date: calendar::date_of(d).to_string(), count: c }).collect(),
    })
}

/// Save a segment
#[utoipa::path(post, path = "/v1/segments", tag = "segments", request_body = SegmentIn,
    responses((status = 201, body = SegmentView), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SegmentIn>,
) -> ApiResult<(StatusCode, axum::Json<SegmentView>)> {
    caller.require(Action::ManageAudience)?;
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(DomainError::field("name", "1 to 100 characters").into());
    }
    let now = state.now();
    let rule = state.audience.parse(&state.store, now, &body.rule).await?;
    let count = {
        let guard = state.audience.get(&state.store, now).await?;
        guard.as_ref().map_or(0, |b| b.index.count(&rule, calendar::day_of(now)))
    };
    let id = format!("seg_{}", ronghe_store::members::new_member_id(now).trim_start_matches("m_"));
    let (json, day) = (body.rule.clone(), calendar::day_of(now));
    let s = state
        .store
        .write(move |tx, _| {
            let s = segments::create(tx, &id, &name, &json, now)?;
            segments::record_size(tx, &s.id, day, count)?;
            Ok(s)
        })
        .await?;
    let sizes = vec![(day, count as i64)];
    Ok((StatusCode::CREATED, axum::Json(segment_view(&state, s, sizes).await?)))
}

/// List saved segments with their current sizes
#[utoipa::path(get, path = "/v1/segments", tag = "segments",
    responses((status = 200, body = SegmentList), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<SegmentList>> {
    caller.require(Action::ReadAudience)?;
    let all = state.store.read(|tx, _| segments::list(tx)).await?;
    let mut out = Vec::new();
    for s in all {
        out.push(segment_view(&state, s, Vec::new()).await?);
    }
    Ok(axum::Json(SegmentList { segments: out }))
}

/// Read a segment, its size now and its daily size history
#[utoipa::path(get, path = "/v1/segments/{id}", tag = "segments", params(("id" = String, Path)),
    responses((status = 200, body = SegmentView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<SegmentView>> {
    caller.require(Action::ReadAudience)?;
    let (s, sizes) = state.store.read(move |tx, _| Ok((segments::get(tx, &id)?, segments::sizes(tx, &id)?))).await?;
    Ok(axum::Json(segment_view(&state, s, sizes).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportQuery {
    /// `csv` (default) or `ndjson`.
    pub format: Option<String>,
}

/// Export a segment's members
///
/// One row per member: the member id and non-personal fields (lifecycle stage, RFM cell and
/// group, tier, points band), as CSV or NDJSON. No personal data, for any role.
#[utoipa::path(get, path = "/v1/segments/{id}/members", tag = "segments", params(("id" = String, Path), ExportQuery),
    responses((status = 200, description = "CSV or NDJSON", content_type = "text/csv"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    caller.require(Action::ExportAudience)?;
    let ndjson = match q.format.as_deref() {
        None | Some("csv") => false,
        Some("ndjson") => true,
        Some(_) => return Err(DomainError::field("format", "csv or ndjson").into()),
    };
    let s = state.store.read(move |tx, _| segments::get(tx, &id)).await?;
    let now = state.now();
    let rule = state.audience.parse(&state.store, now, &s.rule).await?;
    let guard = state.audience.get(&state.store, now).await?;
    let Some(b) = guard.as_ref() else { return Err(ApiError::internal()) };
    let today = calendar::day_of(now);
    let columns = [Dim::Lifecycle, Dim::RfmCell, Dim::RfmGroup, Dim::Tier, Dim::PointsBand];
    let mut out = String::new();
    if !ndjson {
        out.push_str("member_id,lifecycle,rfm_cell,rfm_group,tier,points_band\n");
    }
    for id in b.index.members(&rule, today) {
        let row: Vec<String> = columns.iter().map(|d| b.index.dim_value(id, *d).unwrap_or_default()).collect();
        if ndjson {
            let mut o = serde_json::Map::new();
            o.insert("member_id".into(), id.into());
            for (d, v) in columns.iter().zip(&row) {
                o.insert(d.as_str().into(), v.clone().into());
            }
            out.push_str(&serde_json::Value::Object(o).to_string());
            out.push('\n');
        } else {
            out.push_str(id);
            for v in &row {
                out.push(',');
                out.push_str(&csv_field(v));
            }
            out.push('\n');
        }
    }
    let ctype = if ndjson { "application/x-ndjson" } else { "text/csv; charset=utf-8" };
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(ctype))], out).into_response())
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_string() }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TagView {
    pub name: String,
    /// `manual` or `rule`.
    pub kind: String,
    #[schema(value_type = Option<Object>)]
    pub rule: Option<serde_json::Value>,
    pub description: Option<String>,
    /// Members holding it now.
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TagList {
    pub tags: Vec<TagView>,
}

/// List tags and how many members hold each
#[utoipa::path(get, path = "/v1/tags", tag = "tags",
    responses((status = 200, body = TagList), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list_tags(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<TagList>> {
    caller.require(Action::ReadAudience)?;
    let all = state.store.read(|tx, _| tags::list(tx)).await?;
    let now = state.now();
    let guard = state.audience.get(&state.store, now).await?;
    let counts = guard.as_ref().map(|b| b.tag_counts(calendar::day_of(now))).unwrap_or_default();
    Ok(axum::Json(TagList {
        tags: all
            .into_iter()
            .map(|t| TagView {
                count: counts.get(&t.name).copied().unwrap_or(0),
                name: t.name,
                kind: t.kind,
                rule: t.rule,
                description: t.description,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TagIn {
    /// A segment rule for a rule tag (kept current by the index); absent for a manual tag.
    #[schema(value_type = Option<Object>)]
    pub rule: Option<serde_json::Value>,
    pub description: Option<String>,
}

fn check_tag_name(name: &str) -> Result<(), DomainError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok { Ok(()) } else { Err(DomainError::field("name", "1 to 64 letters, digits, _ - . or :")) }
}

/// Define a tag (manual, or a rule tag with its segment rule)
#[utoipa::path(put, path = "/v1/tags/{name}", tag = "tags", params(("name" = String, Path)), request_body = TagIn,
    responses((status = 200, body = TagView), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn define_tag(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<TagIn>,
) -> ApiResult<axum::Json<TagView>> {
    caller.require(Action::ManageAudience)?;
    check_tag_name(&name)?;
    let now = state.now();
    if let Some(rule) = &body.rule {
        state.audience.parse(&state.store, now, rule).await.map_err(|e| prefix(e, "rule"))?;
        let guard = state.audience.get(&state.store, now).await?;
        if let Some(b) = guard.as_ref()
            && let Some(t) = rule_tag_names(rule).into_iter().find(|t| b.is_rule_tag(t) || *t == name)
        {
            return Err(
                DomainError::field("rule", format!("a rule tag's rule may not name another rule tag ({t})")).into()
            );
        }
    }
    let (n, rule, desc) = (name.clone(), body.rule.clone(), body.description.clone());
    let t = state.store.write(move |tx, _| tags::define(tx, &n, rule.as_ref(), desc.as_deref(), now)).await?;
    state.audience.reload_vocabulary(&state.store).await?;
    let guard = state.audience.get(&state.store, now).await?;
    let count = guard.as_ref().and_then(|b| b.tag_counts(calendar::day_of(now)).get(&name).copied()).unwrap_or(0);
    Ok(axum::Json(TagView { name: t.name, kind: t.kind, rule: t.rule, description: t.description, count }))
}

/// The tags a rule's JSON names (before expansion).
fn rule_tag_names(json: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    match json {
        serde_json::Value::Object(o) => {
            for (k, v) in o {
                if k == "tag" {
                    if let Some(t) = v.as_str() {
                        out.push(t.to_string());
                    }
                } else {
                    out.extend(rule_tag_names(v));
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| out.extend(rule_tag_names(v))),
        _ => {}
    }
    out
}

fn prefix(mut e: ApiError, field: &str) -> ApiError {
    for f in &mut e.error.errors {
        if let Some(rest) = f.field.strip_prefix("rule") {
            f.field = format!("{field}{rest}");
        }
    }
    e
}

#[derive(Debug, Deserialize, ToSchema, Default)]
pub struct TagMembersIn {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TagMembersView {
    pub added: usize,
    pub removed: usize,
    /// Ids that name no member (left out).
    pub unknown: Vec<String>,
}

/// Add and remove a manual tag for members in bulk (JSON or CSV)
///
/// JSON `{"add":[member ids], "remove":[member ids]}`, or a `text/csv` body whose first column
/// holds member ids (a header `member_id` is skipped) to add. At most 100,000 ids per call. The
/// tag is created on first use.
#[utoipa::path(post, path = "/v1/tags/{name}/members", tag = "tags", params(("name" = String, Path)), request_body = TagMembersIn,
    responses((status = 200, body = TagMembersView), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn tag_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<TagMembersView>> {
    caller.require(Action::TagMembers)?;
    check_tag_name(&name)?;
    let csv =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/csv"));
    let input: TagMembersIn = if csv {
        let text =
            std::str::from_utf8(&body).map_err(|_| DomainError::new(Code::MalformedBody, "the CSV is not UTF-8"))?;
        let add = text
            .lines()
            .filter_map(|l| l.split(',').next())
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty() && s != "member_id")
            .collect();
        TagMembersIn { add, remove: Vec::new() }
    } else {
        crate::extract::parse(&body)?
    };
    if input.add.len() + input.remove.len() > 100_000 {
        return Err(DomainError::field("add", "at most 100,000 member ids per call").into());
    }
    let now = state.now();
    let (tag, add, remove) = (name.clone(), input.add, input.remove);
    let ((added, unknown_a), (removed, unknown_r)) = state
        .store
        .write(move |tx, _| Ok((tags::apply(tx, &tag, &add, true, now)?, tags::apply(tx, &tag, &remove, false, now)?)))
        .await?;
    state.audience.reload_vocabulary(&state.store).await?;
    let (na, nr) = (added.len(), removed.len());
    state.refresh_members(added.into_iter().chain(removed)).await?;
    let mut unknown = unknown_a;
    unknown.extend(unknown_r);
    Ok(axum::Json(TagMembersView { added: na, removed: nr, unknown }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AsOfQuery {
    /// `YYYY-MM-DD` in the tenant's time zone; default today.
    pub as_of: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RfmCellView {
    pub cell: String,
    pub r: u8,
    pub f: u8,
    pub m: u8,
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RfmGroupView {
    pub group: String,
    pub label: String,
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RfmView {
    pub as_of: String,
    pub window_days: u32,
    /// Scores run 1..k.
    pub k: u8,
    /// Per dimension, the smallest value reaching scores 2..k (recency as negative days).
    #[schema(value_type = Object)]
    pub boundaries: serde_json::Value,
    pub scored: u64,
    /// Members who never bought before `as_of`.
    pub unscored: u64,
    pub cells: Vec<RfmCellView>,
    pub groups: Vec<RfmGroupView>,
}

fn parse_as_of(s: Option<&str>, now: i64) -> Result<i32, DomainError> {
    match s {
        None => Ok(calendar::day_of(now)),
        Some(d) => d
            .parse::<jiff::civil::Date>()
            .map(calendar::day_of_date)
            .map_err(|_| DomainError::field("as_of", "a date YYYY-MM-DD")),
    }
}

/// RFM cells and the eight named groups, computed from scratch as of a date
///
/// R counts the days from the last order before the end of `as_of` to `as_of`; F and M count
/// the orders and the paid amount within the window ending that day. See docs/cdp.md.
#[utoipa::path(get, path = "/v1/analytics/rfm", tag = "analytics", params(AsOfQuery),
    responses((status = 200, body = RfmView), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn rfm(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AsOfQuery>,
) -> ApiResult<axum::Json<RfmView>> {
    caller.require(Action::ReadAudience)?;
    let day = parse_as_of(q.as_of.as_deref(), state.now())?;
    let (config, rows, members) = state
        .store
        .read(move |tx, _| {
            let c = audience::rfm_config(tx)?;
            let from = calendar::start_of(day - c.window_days as i32 + 1);
            let rows = audience::rfm_raw(tx, calendar::start_of(day + 1), from)?;
            Ok((c, rows, ronghe_store::members::count_active(tx)?))
        })
        .await?;
    Ok(axum::Json(rfm_answer(&config, day, &rows, members)))
}

/// Score raw values and count cells and groups (shared with the benchmark's own timing).
pub fn rfm_answer(config: &RfmConfig, day: i32, rows: &[(String, i64, i64, i64)], members: i64) -> RfmView {
    let raws: Vec<Raw> = rows
        .iter()
        .map(|(_, last, f, m)| Raw {
            recency_days: Some((day - calendar::day_of(*last)).max(0) as u32),
            frequency: *f,
            monetary_fen: *m,
        })
        .collect();
    let b = Boundaries::compute(config, &raws);
    let mut cells: BTreeMap<(u8, u8, u8), u64> = BTreeMap::new();
    let mut groups: BTreeMap<Group, u64> = BTreeMap::new();
    for raw in &raws {
        let s = b.score(raw);
        *cells.entry((s.r, s.f, s.m)).or_default() += 1;
        if let Some(g) = s.group(b.k) {
            *groups.entry(g).or_default() += 1;
        }
    }
    RfmView {
        as_of: calendar::date_of(day).to_string(),
        window_days: config.window_days,
        k: b.k,
        boundaries: serde_json::json!({"r": b.r, "f": b.f, "m": b.m}),
        scored: raws.len() as u64,
        unscored: (members as u64).saturating_sub(raws.len() as u64),
        cells: cells
            .into_iter()
            .map(|((r, f, m), count)| RfmCellView { cell: format!("R{r}F{f}M{m}"), r, f, m, count })
            .collect(),
        groups: Group::ALL
            .iter()
            .map(|g| RfmGroupView {
                group: g.as_str().into(),
                label: g.label_zh().into(),
                count: groups.get(g).copied().unwrap_or(0),
            })
            .collect(),
    }
}

/// Read the RFM configuration
#[utoipa::path(get, path = "/v1/analytics/rfm/config", tag = "analytics",
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_rfm_config(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<RfmConfig>> {
    caller.require(Action::ReadAudience)?;
    Ok(axum::Json(state.store.read(|tx, _| audience::rfm_config(tx)).await?))
}

/// Change the RFM window and scoring (quintiles or fixed thresholds)
///
/// `{"window_days":365,"scoring":{"kind":"quintiles"}}` or `{"scoring":{"kind":"thresholds",
/// "recency_days":[30,90],"frequency":[2,4],"monetary_fen":[50000,200000]}}` (F or M absent:
/// tertiles). The index is rebuilt with the new scores before the answer.
#[utoipa::path(put, path = "/v1/analytics/rfm/config", tag = "analytics", request_body = Object,
    responses((status = 200, body = Object), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn put_rfm_config(
    State(state): State<AppState>,
    caller: Caller,
    Json(c): Json<RfmConfig>,
) -> ApiResult<axum::Json<RfmConfig>> {
    caller.require(Action::ManageAudience)?;
    c.validate()?;
    let saved = c.clone();
    state.store.write(move |tx, _| audience::set_rfm_config(tx, &saved)).await?;
    state.audience.rebuild(&state.store, state.now(), true).await?;
    Ok(axum::Json(c))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RebuildView {
    pub members: u64,
}

/// Rebuild this node's audience index from the store now
///
/// The index follows every write made through the API at once and rebuilds itself each new
/// day; call this after writing to the store from outside (`ronghe import transactions`).
#[utoipa::path(post, path = "/v1/analytics/rebuild", tag = "analytics",
    responses((status = 200, body = RebuildView), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn rebuild(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<RebuildView>> {
    caller.require(Action::ManageAudience)?;
    let now = state.now();
    state.audience.rebuild(&state.store, now, true).await?;
    let guard = state.audience.get(&state.store, now).await?;
    Ok(axum::Json(RebuildView { members: guard.as_ref().map_or(0, |b| b.index.len()) }))
}

/// Read the lifecycle rules
#[utoipa::path(get, path = "/v1/analytics/lifecycle/config", tag = "analytics",
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_lifecycle_config(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<LifecycleConfig>> {
    caller.require(Action::ReadAudience)?;
    Ok(axum::Json(state.store.read(|tx, _| audience::lifecycle_config(tx)).await?))
}

/// Change the lifecycle rules
///
/// `{"mature_orders":4,"window_days":365,"silent_after_days":90,"churned_after_days":180}`.
/// Members whose stage changes get a recorded transition.
#[utoipa::path(put, path = "/v1/analytics/lifecycle/config", tag = "analytics", request_body = Object,
    responses((status = 200, body = Object), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn put_lifecycle_config(
    State(state): State<AppState>,
    caller: Caller,
    Json(c): Json<LifecycleConfig>,
) -> ApiResult<axum::Json<LifecycleConfig>> {
    caller.require(Action::ManageAudience)?;
    c.validate()?;
    let saved = c.clone();
    state.store.write(move |tx, _| audience::set_lifecycle_config(tx, &saved)).await?;
    state.audience.rebuild(&state.store, state.now(), true).await?;
    Ok(axum::Json(c))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LifecycleView {
    /// Members per stage now.
    #[schema(value_type = Object)]
    pub stages: BTreeMap<String, u64>,
}

/// Members per lifecycle stage now
#[utoipa::path(get, path = "/v1/analytics/lifecycle", tag = "analytics",
    responses((status = 200, body = LifecycleView), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn lifecycle(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<LifecycleView>> {
    caller.require(Action::ReadAudience)?;
    let guard = state.audience.get(&state.store, state.now()).await?;
    let stages = guard
        .as_ref()
        .map(|b| b.index.lifecycle_counts().into_iter().map(|(s, n)| (s.as_str().to_string(), n)).collect())
        .unwrap_or_default();
    Ok(axum::Json(LifecycleView { stages }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DimensionView {
    pub dimension: String,
    /// Value → members holding it now.
    #[schema(value_type = Object)]
    pub values: BTreeMap<String, u64>,
}

/// The values of a built-in dimension and how many members hold each
#[utoipa::path(get, path = "/v1/analytics/dimensions/{dim}", tag = "analytics", params(("dim" = String, Path)),
    responses((status = 200, body = DimensionView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn dimension(
    State(state): State<AppState>,
    caller: Caller,
    Path(dim): Path<String>,
) -> ApiResult<axum::Json<DimensionView>> {
    caller.require(Action::ReadAudience)?;
    let d = Dim::parse(&dim).ok_or_else(|| DomainError::not_found("dimension"))?;
    let guard = state.audience.get(&state.store, state.now()).await?;
    let values = guard.as_ref().map(|b| b.dim_counts(d)).unwrap_or_default();
    Ok(axum::Json(DimensionView { dimension: d.as_str().into(), values }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QualityCount {
    pub source: String,
    /// `accepted`, `duplicate`, or a rejection reason.
    pub outcome: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DataQualityView {
    pub from: String,
    pub accepted: i64,
    pub duplicates: i64,
    pub rejected: i64,
    /// Per source (API key id) and outcome.
    pub counts: Vec<QualityCount>,
    /// Mean and largest lag between event time and arrival of accepted events, in ms.
    pub freshness_mean_ms: i64,
    pub freshness_max_ms: i64,
    pub members: i64,
    /// Share (0–1) of active members with each key profile field.
    #[schema(value_type = Object)]
    pub completeness: BTreeMap<String, f64>,
    /// Share of members with every key field (gender, city, birthday, phone).
    pub complete_share: f64,
    /// What retailers aim for.
    pub completeness_target: f64,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct QualityQuery {
    /// Days back to count, today included (default 7).
    pub days: Option<i32>,
}

/// Data quality: ingestion counts by source and reason, freshness, profile completeness
#[utoipa::path(get, path = "/v1/data-quality", tag = "analytics", params(QualityQuery),
    responses((status = 200, body = DataQualityView), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn data_quality(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<QualityQuery>,
) -> ApiResult<axum::Json<DataQualityView>> {
    caller.require(Action::ReadAudience)?;
    let days = q.days.unwrap_or(7);
    if !(1..=400).contains(&days) {
        return Err(DomainError::field("days", "1 to 400").into());
    }
    let from_day = calendar::day_of(state.now()) - days + 1;
    let (counts, (members, fields)) =
        state.store.read(move |tx, _| Ok((events::ingest_counts(tx, from_day)?, events::completeness(tx)?))).await?;
    let (mut accepted, mut duplicates, mut rejected, mut lag_sum, mut lag_max) = (0, 0, 0, 0, 0);
    for c in &counts {
        match c.outcome.as_str() {
            "accepted" => {
                accepted += c.count;
                lag_sum += c.lag_ms_sum;
                lag_max = lag_max.max(c.lag_ms_max);
            }
            "duplicate" => duplicates += c.count,
            _ => rejected += c.count,
        }
    }
    let share = |n: i64| if members == 0 { 0.0 } else { n as f64 / members as f64 };
    let completeness: BTreeMap<String, f64> = fields.iter().map(|(k, v)| (k.to_string(), share(*v))).collect();
    let key = ["gender", "city", "birthday", "phone"];
    let complete_share = key.iter().map(|k| completeness.get(*k).copied().unwrap_or(0.0)).fold(1.0_f64, f64::min);
    Ok(axum::Json(DataQualityView {
        from: calendar::date_of(from_day).to_string(),
        accepted,
        duplicates,
        rejected,
        counts: counts
            .into_iter()
            .map(|c| QualityCount { source: c.source, outcome: c.outcome, count: c.count })
            .collect(),
        freshness_mean_ms: if accepted == 0 { 0 } else { lag_sum / accepted },
        freshness_max_ms: lag_max,
        members,
        completeness,
        complete_share,
        completeness_target: 0.95,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EventsQuery {
    /// Events after this sequence number (from the last line of the previous page).
    pub after: Option<i64>,
    pub member_id: Option<String>,
    /// At most this many (default 10,000, at most 100,000).
    pub limit: Option<i64>,
}

/// Export behaviour events as NDJSON
///
/// In arrival order, one event per line with its `seq`; page with `after`. Never carries
/// identify traits (personal data).
#[utoipa::path(get, path = "/v1/events/export", tag = "analytics", params(EventsQuery),
    responses((status = 200, description = "NDJSON", content_type = "application/x-ndjson"), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn export_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Response> {
    caller.require(Action::ExportAudience)?;
    let limit = q.limit.unwrap_or(10_000);
    if !(1..=100_000).contains(&limit) {
        return Err(DomainError::field("limit", "1 to 100000").into());
    }
    let member = match q.member_id {
        Some(m) => Some(state.store.read(move |tx, _| ronghe_store::members::resolve(tx, &m)).await?),
        None => None,
    };
    let rows = state.store.read(move |tx, _| events::page(tx, q.after.unwrap_or(0), member.as_deref(), limit)).await?;
    let mut out = String::new();
    for e in rows {
        out.push_str(&serde_json::to_string(&event_json(&e)).unwrap_or_default());
        out.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"))], out).into_response())
}

pub fn event_json(e: &events::StoredEvent) -> serde_json::Value {
    serde_json::json!({
        "seq": e.seq, "message_id": e.message_id, "type": e.kind, "event": e.name, "member_id": e.member_id,
        "timestamp": rfc3339(e.at), "received_at": rfc3339(e.received_at), "channel": e.channel, "store_id": e.store_id,
        "properties": e.body.get("properties"), "context": e.body.get("context"),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionView {
    /// Days behaviour events are kept (default 400); older ones are removed hourly.
    pub days: i64,
}

/// How long behaviour events are kept
#[utoipa::path(get, path = "/v1/events/retention", tag = "analytics",
    responses((status = 200, body = RetentionView), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_retention(State(state): State<AppState>, caller: Caller) -> ApiResult<axum::Json<RetentionView>> {
    caller.require(Action::ReadAudience)?;
    Ok(axum::Json(RetentionView { days: state.store.read(|tx, _| audience::retention_days(tx)).await? }))
}

/// Change how long behaviour events are kept
///
/// 7 to 3,660 days. Events older than that are removed by the hourly housekeeping; event rules
/// look back at most 366 days.
#[utoipa::path(put, path = "/v1/events/retention", tag = "analytics", request_body = RetentionView,
    responses((status = 200, body = RetentionView), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn put_retention(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<RetentionView>,
) -> ApiResult<axum::Json<RetentionView>> {
    caller.require(Action::ManageAudience)?;
    if !(7..=3660).contains(&body.days) {
        return Err(DomainError::field("days", "7 to 3660").into());
    }
    let days = body.days;
    state.store.write(move |tx, _| audience::set_retention_days(tx, days)).await?;
    state.audience.rebuild(&state.store, state.now(), true).await?;
    Ok(axum::Json(body))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineView {
    pub member_id: String,
    /// Newest first: behaviour events, store visits and orders on one timeline.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
    /// Lifecycle stage changes, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub lifecycle: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TimelineQuery {
    /// At most this many events (default 50, at most 500).
    pub limit: Option<i64>,
}

/// A member's timeline: events online and offline, orders, lifecycle changes
#[utoipa::path(get, path = "/v1/members/{id}/events", tag = "members", params(("id" = String, Path), TimelineQuery),
    responses((status = 200, body = TimelineView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn timeline(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> ApiResult<axum::Json<TimelineView>> {
    caller.require(Action::ReadMember)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(DomainError::field("limit", "1 to 500").into());
    }
    let (member_id, evs, transitions) = state
        .store
        .read(move |tx, _| {
            let id = ronghe_store::members::resolve(tx, &id)?;
            Ok((id.clone(), events::timeline(tx, &id, limit)?, audience::transitions(tx, &id)?))
        })
        .await?;
    Ok(axum::Json(TimelineView {
        member_id,
        events: evs.iter().map(event_json).collect(),
        lifecycle: transitions
            .into_iter()
            .map(|t| serde_json::json!({"from": t.from, "to": t.to, "at": rfc3339(t.at)}))
            .collect(),
    }))
}
