//! This node's audience index and the rules around it: built from the store at start and
//! rebuilt in the background at the first use of each new day (so that windows and recency
//! slide with time; answers meanwhile come from the previous day's index), refreshed for every
//! member a write touches before the write is answered, and the vocabulary (tags, attributes)
//! that segment rules are checked against. Nothing a till waits for (member lookups) ever
//! waits for a build.

use crate::problem::ApiError;
use ronghe_domain::dims::{self, Dim};
use ronghe_domain::lifecycle::{LifecycleConfig, Stage};
use ronghe_domain::profile::AttributeKind;
use ronghe_domain::rfm::{Boundaries, Raw, RfmConfig};
use ronghe_domain::segment::{Facts, Rule, Vocabulary};
use ronghe_domain::{Millis, calendar};
use ronghe_engine::AudienceIndex;
use ronghe_store::audience::{self, MemberData, Which};
use ronghe_store::{Store, members, tags};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

/// Members loaded per read during a rebuild.
const PAGE: i64 = 5_000;

pub struct Built {
    pub index: AudienceIndex,
    pub boundaries: Boundaries,
    pub rfm: RfmConfig,
    pub lifecycle: LifecycleConfig,
    pub day: i32,
    tags: BTreeSet<String>,
    rule_tags: BTreeMap<String, Rule>,
    attributes: BTreeMap<String, AttributeKind>,
    pub retention_days: i64,
}

/// Members refreshed per store read when the queue is flushed.
const FLUSH_BATCH: usize = 500;

#[derive(Default)]
pub struct Audience {
    built: RwLock<Option<Built>>,
    /// Members written since the last flush. Writes only queue their members (a write must
    /// not pay for re-reading its member); every answer that reads the index flushes first,
    /// so it still sees each acknowledged write; a background task flushes every 100 ms.
    pending: Mutex<BTreeSet<String>>,
    flushing: tokio::sync::Mutex<()>,
    /// Held while a rebuild runs; members written meanwhile are refreshed after it.
    building: tokio::sync::Mutex<()>,
    touched_while_building: Mutex<Option<BTreeSet<String>>>,
}

/// The facts the index holds for a member on `today`, and its lifecycle stage.
pub fn facts(d: &MemberData, today: i32, b: &Boundaries, rfm: &RfmConfig, lc: &LifecycleConfig) -> Facts {
    let raw = d.summary.rfm_raw(today, rfm.window_days);
    let scores = b.score(&raw);
    let stage = d.summary.stage(today, lc);
    let mut attrs = d.attrs.clone();
    for (name, v) in [("city", &d.summary.city), ("gender", &d.summary.gender)] {
        if let Some(v) = v {
            attrs.insert(name.to_string(), serde_json::Value::String(v.clone()));
        }
    }
    Facts {
        tags: d.tags.clone(),
        dims: dims::compute(&d.summary, today, scores, b.k, stage),
        lifecycle: stage,
        rfm: scores,
        attrs,
        points: d.summary.points,
        events: d.events.clone(),
        profiling: d.profiling,
    }
}

impl Audience {
    /// The built index, building it first if this node has none yet. When the day has turned
    /// a rebuild starts in the background and this answers from the current index.
    pub async fn get(
        self: &Arc<Self>,
        store: &Store,
        now: Millis,
    ) -> Result<RwLockReadGuard<'_, Option<Built>>, ApiError> {
        let day = self.read().as_ref().map(|b| b.day);
        match day {
            None => self.rebuild(store, now, false).await?,
            Some(d) if d != calendar::day_of(now) && self.building.try_lock().is_ok() => {
                let (me, store) = (self.clone(), store.clone());
                tokio::spawn(async move {
                    if let Err(e) = me.rebuild(&store, now, false).await {
                        tracing::warn!(code = %e.error.code, "the daily rebuild of the audience index failed");
                    }
                });
            }
            Some(_) => {}
        }
        self.flush(store, now).await?;
        Ok(self.read())
    }

    /// The index as it is, never waiting for a build (None before the first one).
    pub fn current(&self) -> RwLockReadGuard<'_, Option<Built>> {
        self.read()
    }

    fn read(&self) -> RwLockReadGuard<'_, Option<Built>> {
        self.built.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuild from the store (at start, each new day, after the rules change). With `force`,
    /// rebuild even when another caller just did.
    pub async fn rebuild(&self, store: &Store, now: Millis, force: bool) -> Result<(), ApiError> {
        let _one = self.building.lock().await;
        let today = calendar::day_of(now);
        if !force && self.read().as_ref().is_some_and(|b| b.day == today) {
            return Ok(());
        }
        *self.touched_while_building.lock().unwrap_or_else(|e| e.into_inner()) = Some(BTreeSet::new());
        let s = store.clone();
        let (built, changes) = tokio::task::spawn_blocking(move || build(&s, now)).await.map_err(internal)??;
        *self.built.write().unwrap_or_else(|e| e.into_inner()) = Some(built);
        record_stages(store, changes, now).await?;
        let touched = self.touched_while_building.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(ids) = touched.filter(|t| !t.is_empty()) {
            self.queue(ids.into_iter().collect());
            self.flush(store, now).await?;
        }
        tracing::info!(members = self.read().as_ref().map_or(0, |b| b.index.len()), "audience index built");
        Ok(())
    }

    /// Queue members a write changed; the next read of the index (or the background flush)
    /// reloads them. Does nothing until the index is first built (the build reads the write).
    pub fn queue(&self, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        if let Some(t) = self.touched_while_building.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            t.extend(ids.iter().cloned());
        }
        if self.read().is_none() {
            return;
        }
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).extend(ids);
    }

    /// Whether a member waits in the refresh queue.
    pub fn is_pending(&self, member_id: &str) -> bool {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).contains(member_id)
    }

    /// Reload the queued members, a batch per store read.
    pub async fn flush(&self, store: &Store, now: Millis) -> Result<(), ApiError> {
        if self.pending.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            return Ok(());
        }
        let _one = self.flushing.lock().await;
        let ids: Vec<String> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner())).into_iter().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let Some((boundaries, rfm, lc, retention)) =
            self.read().as_ref().map(|b| (b.boundaries.clone(), b.rfm.clone(), b.lifecycle.clone(), b.retention_days))
        else {
            return Ok(());
        };
        let today = calendar::day_of(now);
        let from = calendar::start_of(today - retention as i32);
        let wanted = ids.clone();
        let loaded = store
            .read(move |tx, kr| {
                let mut out = Vec::new();
                for chunk in wanted.chunks(FLUSH_BATCH) {
                    out.extend(audience::load(tx, kr, Which::Ids(chunk), from)?);
                }
                Ok(out)
            })
            .await;
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                // Put them back: the next flush tries again.
                self.pending.lock().unwrap_or_else(|e| e.into_inner()).extend(ids);
                return Err(e.into());
            }
        };
        let mut changes = Vec::new();
        {
            let mut guard = self.built.write().unwrap_or_else(|e| e.into_inner());
            let Some(b) = guard.as_mut() else { return Ok(()) };
            let present: BTreeSet<&str> = loaded.iter().map(|d| d.id.as_str()).collect();
            for id in &ids {
                if !present.contains(id.as_str()) {
                    b.index.remove(id); // erased, or absorbed by a merge
                }
            }
            for d in &loaded {
                let f = facts(d, today, &boundaries, &rfm, &lc);
                if d.recorded_stage != Some(f.lifecycle) {
                    changes.push((d.id.clone(), f.lifecycle));
                }
                b.index.upsert(&d.id, &f, true);
            }
        }
        record_stages(store, changes, now).await
    }

    /// New events of known members, just stored.
    pub fn add_events(&self, touched: &[(String, String, i32)]) {
        if touched.is_empty() {
            return;
        }
        let mut guard = self.built.write().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = guard.as_mut() {
            for (member, name, day) in touched {
                b.index.add_event(member, name, *day, 1);
            }
        }
    }

    /// Parse a rule against what exists now, rule tags expanded.
    pub async fn parse(
        self: &Arc<Self>,
        store: &Store,
        now: Millis,
        json: &serde_json::Value,
    ) -> Result<Rule, ApiError> {
        let guard = self.get(store, now).await?;
        let b = guard.as_ref().ok_or_else(|| internal("no index"))?;
        let rule = Rule::parse(json, &Vocabulary { tags: &b.tags, attributes: &b.attributes, rfm_k: b.rfm_k() })?;
        Ok(rule.expand(&b.rule_tags))
    }

    /// Take in a new or changed tag definition or attribute without a rebuild.
    pub async fn reload_vocabulary(&self, store: &Store) -> Result<(), ApiError> {
        let (tag_list, attributes) = store.read(|tx, _| Ok((tags::list(tx)?, members::attribute_defs(tx)?))).await?;
        let k = self.read().as_ref().map_or(5, |b| b.rfm_k());
        let (names, rule_tags) = vocabulary(&tag_list, &attributes, k);
        if let Some(b) = self.built.write().unwrap_or_else(|e| e.into_inner()).as_mut() {
            b.tags = names;
            b.rule_tags = rule_tags;
            b.attributes = attributes;
        }
        Ok(())
    }
}

impl Built {
    /// Fill a member view's tags, RFM, lifecycle and dimensions from the index.
    pub fn describe(&self, v: &mut crate::view::MemberView, today: i32) {
        let Some((scores, stage)) = self.index.scores(&v.id) else { return };
        v.tags = self.member_tags(&v.id, self.index.member_tags(&v.id).into_iter(), today);
        v.lifecycle = Some(stage.as_str().to_string());
        v.rfm = scores.is_scored().then(|| crate::view::MemberRfmView {
            r: scores.r,
            f: scores.f,
            m: scores.m,
            cell: scores.cell(),
            group: scores.group(self.rfm_k()).map(|g| g.as_str().to_string()),
            recency_days: None,
            frequency: None,
            monetary_fen: None,
        });
        for d in Dim::ALL {
            let values = self.index.dim_values(&v.id, d);
            if !values.is_empty() && (!d.from_events() || self.index.has_profiling(&v.id)) {
                v.dimensions.insert(d.as_str().to_string(), values);
            }
        }
    }

    pub fn rfm_k(&self) -> u8 {
        self.index.rfm_k()
    }

    pub fn is_rule_tag(&self, name: &str) -> bool {
        self.rule_tags.contains_key(name)
    }

    /// The tags a member holds: manual ones and the rule tags it matches now.
    pub fn member_tags(&self, member_id: &str, manual: impl Iterator<Item = String>, today: i32) -> Vec<String> {
        let mut out: BTreeSet<String> = manual.collect();
        for (name, rule) in &self.rule_tags {
            if self.index.matches(member_id, rule, today) {
                out.insert(name.clone());
            }
        }
        out.into_iter().collect()
    }

    /// All tag names with how many members hold each now.
    pub fn tag_counts(&self, today: i32) -> BTreeMap<String, u64> {
        self.tags
            .iter()
            .map(|t| {
                let rule = self.rule_tags.get(t).cloned().unwrap_or_else(|| Rule::Tag(t.clone()));
                (t.clone(), self.index.count(&rule, today))
            })
            .collect()
    }

    pub fn dim_counts(&self, dim: Dim) -> BTreeMap<String, u64> {
        self.index.dim_counts(dim)
    }
}

fn vocabulary(
    tag_list: &[tags::Tag],
    attributes: &BTreeMap<String, AttributeKind>,
    rfm_k: u8,
) -> (BTreeSet<String>, BTreeMap<String, Rule>) {
    let names: BTreeSet<String> = tag_list.iter().map(|t| t.name.clone()).collect();
    let mut rule_tags = BTreeMap::new();
    for t in tag_list {
        if let Some(json) = &t.rule {
            // Checked when defined; a rule that no longer parses (an attribute gone) matches nobody.
            let rule = Rule::parse(json, &Vocabulary { tags: &names, attributes, rfm_k })
                .unwrap_or_else(|_| Rule::Tag("\u{0}matches nobody".into()));
            rule_tags.insert(t.name.clone(), rule);
        }
    }
    (names, rule_tags)
}

type Changes = Vec<(String, Stage)>;

fn build(store: &Store, now: Millis) -> Result<(Built, Changes), ApiError> {
    let today = calendar::day_of(now);
    // The settings and everyone's RFM raw values first (boundaries need them all), then the
    // members page by page, each page its own short read: a build of millions of members must
    // not hold one snapshot (and the SQLite WAL) for its whole length. Writes made meanwhile
    // are replayed after the swap.
    let (rfm, lifecycle, retention_days, tag_list, attributes, last, raws) = store.read_blocking(|tx, _| {
        let rfm = audience::rfm_config(tx)?;
        let window_from = calendar::start_of(today - rfm.window_days as i32 + 1);
        let raws: Vec<Raw> = audience::rfm_raw(tx, calendar::start_of(today + 1), window_from)?
            .into_iter()
            .map(|(_, last, f, m)| Raw {
                recency_days: Some((today - calendar::day_of(last)).max(0) as u32),
                frequency: f,
                monetary_fen: m,
            })
            .collect();
        Ok((
            rfm,
            audience::lifecycle_config(tx)?,
            audience::retention_days(tx)?,
            tags::list(tx)?,
            members::attribute_defs(tx)?,
            audience::max_seq(tx)?,
            raws,
        ))
    })?;
    let boundaries = Boundaries::compute(&rfm, &raws);
    drop(raws);
    let mut index = AudienceIndex::new(rfm.k());
    let mut changes = Vec::new();
    let events_from = calendar::start_of(today - retention_days as i32);
    let mut after = 0;
    while after < last {
        let page =
            store.read_blocking(|tx, kr| audience::load(tx, kr, Which::Seqs(after, after + PAGE), events_from))?;
        for d in page {
            let f = facts(&d, today, &boundaries, &rfm, &lifecycle);
            if d.recorded_stage != Some(f.lifecycle) {
                changes.push((d.id.clone(), f.lifecycle));
            }
            index.upsert(&d.id, &f, true);
        }
        after += PAGE;
    }
    let (names, rule_tags) = vocabulary(&tag_list, &attributes, rfm.k());
    Ok((
        Built { index, boundaries, rfm, lifecycle, day: today, tags: names, rule_tags, attributes, retention_days },
        changes,
    ))
}

/// Record lifecycle transitions, a thousand members per transaction.
async fn record_stages(store: &Store, changes: Changes, now: Millis) -> Result<(), ApiError> {
    for chunk in changes.chunks(1000) {
        let chunk = chunk.to_vec();
        store
            .write(move |tx, _| {
                for (id, stage) in &chunk {
                    audience::record_stage(tx, id, *stage, now)?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "audience index");
    ApiError::internal()
}
