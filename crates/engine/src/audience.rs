//! The audience index: for every member (a dense number), the facts segment rules ask about,
//! held as roaring bitmaps (one per tag, dimension value, lifecycle stage, RFM score and
//! points band, one per event name and day) and as compact columns for checking single
//! members. It is derived state: rebuilt from the store, updated by each acknowledged write.
//!
//! A rule is answered with bitmap algebra; inside an `all`, once the candidates are few, the
//! remaining predicates are checked member by member against the columns instead of
//! materialising their bitmaps — that is what keeps a five-predicate count over ten million
//! members near a millisecond.

use crate::dense::Dense;
use roaring::RoaringBitmap;
use ronghe_domain::dims::Dim;
use ronghe_domain::lifecycle::Stage;
use ronghe_domain::rfm::Scores;
use ronghe_domain::segment::{Facts, Rule, compare};
use serde_json::Value as J;
use std::collections::{BTreeMap, HashMap};

/// Lower bounds of the points bands kept as "points ≥ bound" bitmaps.
const POINT_BOUNDS: &[u32] = &[1, 100, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000];
/// A column code meaning "no value".
const NONE: u16 = u16::MAX;

/// Dimension codes per member: one byte while a dimension has fewer than 255 values (what a
/// check of a few hundred thousand candidates reads is then half as much), two after.
enum Codes {
    Narrow(Vec<u8>),
    Wide(Vec<u16>),
}

impl Default for Codes {
    fn default() -> Self {
        Codes::Narrow(Vec::new())
    }
}

impl Codes {
    fn get(&self, i: usize) -> u16 {
        match self {
            Codes::Narrow(v) if v[i] == u8::MAX => NONE,
            Codes::Narrow(v) => u16::from(v[i]),
            Codes::Wide(v) => v[i],
        }
    }

    fn set(&mut self, i: usize, code: u16) {
        if let Codes::Narrow(v) = self
            && code != NONE
            && code >= u16::from(u8::MAX)
        {
            *self = Codes::Wide(v.iter().map(|c| if *c == u8::MAX { NONE } else { u16::from(*c) }).collect());
        }
        match self {
            Codes::Narrow(v) => v[i] = if code == NONE { u8::MAX } else { code as u8 },
            Codes::Wide(v) => v[i] = code,
        }
    }

    fn push_none(&mut self) {
        match self {
            Codes::Narrow(v) => v.push(u8::MAX),
            Codes::Wide(v) => v.push(NONE),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Codes::Narrow(v) => v.len(),
            Codes::Wide(v) => v.len() * 2,
        }
    }
}

#[derive(Default)]
struct DimIndex {
    values: Vec<String>,
    lookup: HashMap<String, u16>,
    bitmaps: Vec<RoaringBitmap>,
    /// The member's single value (most dimensions have exactly one), else `NONE`.
    column: Codes,
}

impl DimIndex {
    fn code(&mut self, value: &str) -> Option<u16> {
        if let Some(c) = self.lookup.get(value) {
            return Some(*c);
        }
        if self.values.len() >= usize::from(NONE) {
            return None;
        }
        let c = self.values.len() as u16;
        self.values.push(value.to_string());
        self.lookup.insert(value.to_string(), c);
        self.bitmaps.push(RoaringBitmap::new());
        Some(c)
    }
}

#[derive(Default)]
struct DayEvents {
    members: RoaringBitmap,
    /// Count − 1 for members with more than one event that day.
    extra: HashMap<u32, u32>,
}

impl DayEvents {
    fn count(&self, no: u32) -> u32 {
        if self.members.contains(no) { 1 + self.extra.get(&no).copied().unwrap_or(0) } else { 0 }
    }
}

/// See the module documentation.
pub struct AudienceIndex {
    ids: Vec<String>,
    nos: HashMap<String, u32>,
    present: RoaringBitmap,
    profiling: RoaringBitmap,
    tags: BTreeMap<String, RoaringBitmap>,
    dims: Vec<DimIndex>,
    lifecycle: [RoaringBitmap; 5],
    lifecycle_col: Vec<u8>,
    rfm_k: u8,
    /// `[r, f, m][s - 1]`: members whose score is at least `s`.
    rfm_ge: [Vec<RoaringBitmap>; 3],
    rfm_col: Vec<[u8; 3]>,
    points_col: Vec<u32>,
    points_ge: Vec<RoaringBitmap>,
    attrs: BTreeMap<String, HashMap<u32, J>>,
    events: HashMap<String, BTreeMap<i32, DayEvents>>,
    /// Inside an `all`, candidates at most this many are checked one by one (None: an eighth
    /// of the members, at least 1,024). Tests vary it so that both paths are exercised.
    filter_max: Option<u64>,
    /// Dense mirrors of the dense features, for the one-pass evaluation of an `all`.
    mirror: Mirror,
    /// From how many members on an `all` is evaluated in one pass over the mirrors.
    fused_min: u64,
}

/// What a one-pass evaluation gives back: the members, or only how many there are.
enum Fused {
    Members(RoaringBitmap),
    Count(u64),
}

#[derive(Default)]
struct Mirror {
    present: Dense,
    profiling: Dense,
    lifecycle: [Dense; 5],
    rfm_ge: [Vec<Dense>; 3],
    points_ge: Vec<Dense>,
    /// Tags held by at least one member in 64 (sparser ones are cheaper as roaring bitmaps).
    tags: HashMap<String, Dense>,
}

impl AudienceIndex {
    /// An empty index whose RFM scores run 1..=`rfm_k`.
    pub fn new(rfm_k: u8) -> Self {
        AudienceIndex {
            ids: Vec::new(),
            nos: HashMap::new(),
            present: RoaringBitmap::new(),
            profiling: RoaringBitmap::new(),
            tags: BTreeMap::new(),
            dims: Dim::ALL.iter().map(|_| DimIndex::default()).collect(),
            lifecycle: Default::default(),
            lifecycle_col: Vec::new(),
            rfm_k,
            rfm_ge: std::array::from_fn(|_| (0..rfm_k).map(|_| RoaringBitmap::new()).collect()),
            rfm_col: Vec::new(),
            points_col: Vec::new(),
            points_ge: POINT_BOUNDS.iter().map(|_| RoaringBitmap::new()).collect(),
            attrs: BTreeMap::new(),
            events: HashMap::new(),
            filter_max: None,
            mirror: Mirror {
                rfm_ge: std::array::from_fn(|_| (0..rfm_k).map(|_| Dense::default()).collect()),
                points_ge: POINT_BOUNDS.iter().map(|_| Dense::default()).collect(),
                ..Mirror::default()
            },
            fused_min: 1 << 20,
        }
    }

    /// Set from how many members on an `all` is evaluated in one pass (tests use 0).
    pub fn with_fused_min(mut self, members: u64) -> Self {
        self.fused_min = members;
        self
    }

    /// Set how few candidates an `all` checks one by one instead of intersecting bitmaps.
    pub fn with_filter_max(mut self, filter_max: u64) -> Self {
        self.filter_max = Some(filter_max);
        self
    }

    pub fn rfm_k(&self) -> u8 {
        self.rfm_k
    }

    /// Members in the index.
    pub fn len(&self) -> u64 {
        self.present.len()
    }

    pub fn is_empty(&self) -> bool {
        self.present.is_empty()
    }

    /// Names of the tags any member holds.
    pub fn tag_names(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().filter(|(_, b)| !b.is_empty()).map(|(t, _)| t.as_str())
    }

    fn number(&mut self, member_id: &str) -> u32 {
        if let Some(no) = self.nos.get(member_id) {
            return *no;
        }
        let no = self.ids.len() as u32;
        self.ids.push(member_id.to_string());
        self.nos.insert(member_id.to_string(), no);
        for d in &mut self.dims {
            d.column.push_none();
        }
        self.lifecycle_col.push(0);
        self.rfm_col.push([0; 3]);
        self.points_col.push(0);
        no
    }

    /// Put a member's facts in the index, replacing what it held. Events are replaced only
    /// with `with_events` (a refresh from the store); otherwise they are left as they are
    /// and grow through [`AudienceIndex::add_event`].
    pub fn upsert(&mut self, member_id: &str, f: &Facts, with_events: bool) {
        let no = self.number(member_id);
        self.clear(no, with_events);
        self.present.insert(no);
        self.mirror.present.set(no, true);
        if f.profiling {
            self.profiling.insert(no);
            self.mirror.profiling.set(no, true);
        }
        for t in &f.tags {
            let b = self.tags.entry(t.clone()).or_default();
            b.insert(no);
            match self.mirror.tags.get_mut(t) {
                Some(d) => d.set(no, true),
                None if b.len() * 64 >= self.ids.len() as u64 => {
                    let mut d = Dense::default();
                    for m in b.iter() {
                        d.set(m, true);
                    }
                    self.mirror.tags.insert(t.clone(), d);
                }
                None => {}
            }
        }
        for (dim, values) in &f.dims {
            let d = &mut self.dims[dim_slot(*dim)];
            for (i, v) in values.iter().enumerate() {
                if let Some(c) = d.code(v) {
                    d.bitmaps[usize::from(c)].insert(no);
                    if i == 0 && values.len() == 1 {
                        d.column.set(no as usize, c);
                    }
                }
            }
        }
        self.lifecycle[f.lifecycle.index()].insert(no);
        self.mirror.lifecycle[f.lifecycle.index()].set(no, true);
        self.lifecycle_col[no as usize] = f.lifecycle.index() as u8;
        let s = [f.rfm.r, f.rfm.f, f.rfm.m];
        for (dim, score) in s.iter().enumerate() {
            for level in 1..=(*score).min(self.rfm_k) {
                self.rfm_ge[dim][usize::from(level - 1)].insert(no);
                self.mirror.rfm_ge[dim][usize::from(level - 1)].set(no, true);
            }
        }
        self.rfm_col[no as usize] = s;
        let points = f.points.clamp(0, i64::from(u32::MAX)) as u32;
        self.points_col[no as usize] = points;
        for (i, bound) in POINT_BOUNDS.iter().enumerate() {
            if points >= *bound {
                self.points_ge[i].insert(no);
                self.mirror.points_ge[i].set(no, true);
            }
        }
        for (name, value) in &f.attrs {
            if !value.is_null() {
                self.attrs.entry(name.clone()).or_default().insert(no, value.clone());
            }
        }
        if with_events {
            for (name, days) in &f.events {
                for (day, count) in days {
                    self.add_events(no, name, *day, *count);
                }
            }
        }
    }

    /// Record `count` more events named `name` on `day` for a member already in the index
    /// (events of members not yet in it arrive with their first refresh).
    pub fn add_event(&mut self, member_id: &str, name: &str, day: i32, count: u32) {
        if let Some(no) = self.nos.get(member_id).copied().filter(|no| self.present.contains(*no)) {
            self.add_events(no, name, day, count);
        }
    }

    fn add_events(&mut self, no: u32, name: &str, day: i32, count: u32) {
        if count == 0 {
            return;
        }
        let day = self.events.entry(name.to_string()).or_default().entry(day).or_default();
        let extra = if day.members.insert(no) { count - 1 } else { count };
        if extra > 0 {
            *day.extra.entry(no).or_default() += extra;
        }
    }

    /// Drop event days before `oldest_day` (the retention).
    pub fn prune_events(&mut self, oldest_day: i32) {
        for days in self.events.values_mut() {
            *days = days.split_off(&oldest_day);
        }
        self.events.retain(|_, d| !d.is_empty());
    }

    /// Take a member out (erased, or absorbed by a merge).
    pub fn remove(&mut self, member_id: &str) {
        if let Some(no) = self.nos.get(member_id).copied() {
            self.clear(no, true);
        }
    }

    fn clear(&mut self, no: u32, with_events: bool) {
        if !self.present.remove(no) {
            return;
        }
        self.profiling.remove(no);
        for b in self.tags.values_mut() {
            b.remove(no);
        }
        let m = &mut self.mirror;
        m.present.set(no, false);
        m.profiling.set(no, false);
        for d in m
            .tags
            .values_mut()
            .chain(m.lifecycle.iter_mut())
            .chain(m.rfm_ge.iter_mut().flatten())
            .chain(m.points_ge.iter_mut())
        {
            d.set(no, false);
        }
        for d in &mut self.dims {
            let c = d.column.get(no as usize);
            if c != NONE {
                d.bitmaps[usize::from(c)].remove(no);
                d.column.set(no as usize, NONE);
            } else {
                for b in &mut d.bitmaps {
                    b.remove(no);
                }
            }
        }
        self.lifecycle[usize::from(self.lifecycle_col[no as usize])].remove(no);
        for dim in &mut self.rfm_ge {
            for b in dim {
                b.remove(no);
            }
        }
        self.rfm_col[no as usize] = [0; 3];
        for b in &mut self.points_ge {
            b.remove(no);
        }
        self.points_col[no as usize] = 0;
        for m in self.attrs.values_mut() {
            m.remove(&no);
        }
        if with_events {
            for days in self.events.values_mut() {
                for d in days.values_mut() {
                    if d.members.remove(no) {
                        d.extra.remove(&no);
                    }
                }
            }
        }
    }

    /// How many members match `rule` on `today`.
    pub fn count(&self, rule: &Rule, today: i32) -> u64 {
        if let Rule::All(children) = rule
            && self.present.len() >= self.fused_min
            && let Some(Fused::Count(n)) = self.eval_all_fused(children, false)
        {
            return n;
        }
        self.eval(rule, today).len()
    }

    /// The ids of the members matching `rule`, in member-number order.
    pub fn members(&self, rule: &Rule, today: i32) -> Vec<&str> {
        self.eval(rule, today).iter().map(|no| self.ids[no as usize].as_str()).collect()
    }

    /// Whether one member matches (for journeys and tests).
    pub fn matches(&self, member_id: &str, rule: &Rule, today: i32) -> bool {
        self.nos.get(member_id).is_some_and(|no| self.present.contains(*no) && self.check(*no, rule, today))
    }

    /// The members matching `rule`.
    pub fn eval(&self, rule: &Rule, today: i32) -> RoaringBitmap {
        match rule {
            Rule::All(children) => self.eval_all(children, today),
            Rule::Any(children) => {
                let mut acc = RoaringBitmap::new();
                for c in children {
                    acc |= self.eval(c, today);
                }
                acc
            }
            Rule::Not(r) => &self.present - self.eval(r, today),
            Rule::Tag(t) => self.tags.get(t).cloned().unwrap_or_default(),
            Rule::Lifecycle(stages) => {
                let mut acc = RoaringBitmap::new();
                for s in stages {
                    acc |= &self.lifecycle[s.index()];
                }
                acc
            }
            Rule::Dim { dim, values } => {
                let d = &self.dims[dim_slot(*dim)];
                let mut acc = RoaringBitmap::new();
                for v in values {
                    if let Some(c) = d.lookup.get(v) {
                        acc |= &d.bitmaps[usize::from(*c)];
                    }
                }
                if dim.from_events() {
                    acc &= &self.profiling;
                }
                acc
            }
            Rule::Rfm { r, f, m } => {
                let mut acc = self.rfm_ge[0][0].clone();
                for (dim, range) in [r, f, m].into_iter().enumerate() {
                    if let Some((lo, hi)) = range {
                        acc &= &self.rfm_ge[dim][usize::from(*lo - 1)];
                        if *hi < self.rfm_k {
                            acc -= &self.rfm_ge[dim][usize::from(*hi)];
                        }
                    }
                }
                acc
            }
            Rule::Points { min, max } => {
                let (superset, exact) = self.points_superset(*min, *max);
                if exact { superset } else { self.filter(&superset, rule, today) }
            }
            Rule::Attr { name, .. } => match self.attrs.get(name) {
                None => RoaringBitmap::new(),
                Some(values) => {
                    let mut acc: RoaringBitmap =
                        values.iter().filter(|(_, v)| self.attr_matches(v, rule)).map(|(no, _)| *no).collect();
                    acc &= &self.present;
                    acc
                }
            },
            Rule::Event { name, within_days, min_count } => {
                let Some(days) = self.events.get(name) else { return RoaringBitmap::new() };
                let from = today - *within_days as i32 + 1;
                let mut acc = RoaringBitmap::new();
                for (_, d) in days.range(from..=today) {
                    acc |= &d.members;
                }
                if *min_count > 1 {
                    let candidates = acc;
                    acc =
                        candidates.iter().filter(|no| self.event_count(*no, name, from, today) >= *min_count).collect();
                }
                acc &= &self.profiling;
                acc
            }
        }
    }

    /// `all`: first the predicates that are plain bitmaps (tags, RFM scores, exact points
    /// bands, single lifecycle stages), intersected in place, most selective first; then the
    /// others — when the candidates are few, checked member by member against the columns
    /// instead of building their bitmaps (a union of ten city bitmaps costs more than checking
    /// a few hundred thousand city codes).
    fn eval_all(&self, children: &[Rule], today: i32) -> RoaringBitmap {
        if self.present.len() >= self.fused_min
            && let Some(Fused::Members(r)) = self.eval_all_fused(children, true)
        {
            return r;
        }
        type Planned<'r> = Vec<(u64, &'r Rule)>;
        let (mut cheap, mut rest): (Planned, Planned) =
            children.iter().map(|c| (self.estimate(c), c)).partition(|(_, c)| self.is_plain_bitmap(c));
        cheap.sort_by_key(|(e, _)| *e);
        rest.sort_by_key(|(e, _)| *e);
        let few = self.filter_max.unwrap_or_else(|| (self.present.len() / 8).max(1024));
        // Every stored bitmap the plain predicates need, smallest first: the first two are
        // intersected into a new bitmap (no copy of either), the rest in place.
        let (mut with, mut without): (Vec<&RoaringBitmap>, Vec<&RoaringBitmap>) = (Vec::new(), Vec::new());
        for (_, child) in &cheap {
            self.plain_bitmaps(child, &mut with, &mut without);
        }
        with.sort_by_key(|b| b.len());
        let mut acc: Option<RoaringBitmap> = match with.as_slice() {
            [] => None,
            [one] => Some((*one).clone()),
            [a, b, ..] => Some(*a & *b),
        };
        if let Some(a) = acc.as_mut() {
            for b in with.iter().skip(2) {
                *a &= *b;
            }
            for b in without {
                *a -= b;
            }
            if a.is_empty() {
                return RoaringBitmap::new();
            }
        }
        for (_, child) in rest {
            acc = Some(match acc {
                None => self.eval(child, today),
                Some(a) if a.len() <= few => self.filter(&a, child, today),
                Some(mut a) => {
                    a &= self.eval(child, today);
                    a
                }
            });
            if acc.as_ref().is_some_and(RoaringBitmap::is_empty) {
                break;
            }
        }
        acc.unwrap_or_default()
    }

    /// `all` in one pass over the dense mirrors: per 64-member word, AND the words of every
    /// dense predicate, then check the surviving members' column values for the others
    /// (dimensions, lifecycle sets, sparse tags, points between bands). Two threads take half
    /// the words each. None when a predicate has no dense or column form (events, attributes,
    /// nested rules): the bitmap path answers those.
    fn eval_all_fused(&self, children: &[Rule], members: bool) -> Option<Fused> {
        enum Check<'a> {
            Sparse(&'a RoaringBitmap),
            Stages([bool; 5]),
            Points(i64, i64),
            Dim {
                index: &'a DimIndex,
                wanted: Vec<bool>,
                consent: bool,
            },
            /// A dimension with one-byte codes: a 256-entry table answers each member.
            Narrow {
                codes: &'a [u8],
                table: Box<[bool; 256]>,
                index: &'a DimIndex,
                wanted: Vec<bool>,
                consent: bool,
            },
        }
        let m = &self.mirror;
        let (mut with, mut without, mut checks): (Vec<&Dense>, Vec<&Dense>, Vec<Check>) = (vec![], vec![], vec![]);
        let mut needs_present = false;
        for c in children {
            match c {
                Rule::Tag(t) => match (m.tags.get(t), self.tags.get(t)) {
                    (Some(d), _) => with.push(d),
                    (None, Some(b)) => checks.push(Check::Sparse(b)),
                    (None, None) => {
                        return Some(if members { Fused::Members(RoaringBitmap::new()) } else { Fused::Count(0) });
                    }
                },
                Rule::Lifecycle(stages) if stages.len() == 1 => with.push(&m.lifecycle[stages[0].index()]),
                Rule::Lifecycle(stages) => {
                    let mut mask = [false; 5];
                    for st in stages {
                        mask[st.index()] = true;
                    }
                    checks.push(Check::Stages(mask));
                    needs_present = true;
                }
                Rule::Rfm { r, f, m: mm } => {
                    for (dim, range) in [r, f, mm].into_iter().enumerate() {
                        if let Some((lo, hi)) = range {
                            with.push(&m.rfm_ge[dim][usize::from(*lo - 1)]);
                            if *hi < self.rfm_k {
                                without.push(&m.rfm_ge[dim][usize::from(*hi)]);
                            }
                        }
                    }
                }
                Rule::Points { min, max } => {
                    let (lower, upper, exact) = self.points_bands(*min, *max);
                    with.push(lower.map_or(&m.present, |i| &m.points_ge[i]));
                    if let Some(i) = upper {
                        without.push(&m.points_ge[i]);
                    }
                    if !exact {
                        checks.push(Check::Points(*min, *max));
                    }
                }
                Rule::Dim { dim, values } => {
                    let index = &self.dims[dim_slot(*dim)];
                    let mut wanted = vec![false; index.values.len()];
                    for c in values.iter().filter_map(|v| index.lookup.get(v)) {
                        wanted[usize::from(*c)] = true;
                    }
                    let consent = dim.from_events();
                    match &index.column {
                        Codes::Narrow(codes) => {
                            let mut table = Box::new([false; 256]);
                            for (c, w) in wanted.iter().enumerate() {
                                table[c] = *w;
                            }
                            checks.push(Check::Narrow { codes, table, index, wanted, consent });
                        }
                        Codes::Wide(_) => checks.push(Check::Dim { index, wanted, consent }),
                    }
                }
                _ => return None,
            }
        }
        if with.is_empty() || needs_present {
            with.push(&m.present);
        }
        let pass = |no: u32, c: &Check| -> bool {
            match c {
                Check::Sparse(b) => b.contains(no),
                Check::Stages(mask) => mask[usize::from(self.lifecycle_col[no as usize])],
                Check::Points(lo, hi) => (*lo..=*hi).contains(&i64::from(self.points_col[no as usize])),
                Check::Dim { index, wanted, consent } => {
                    if *consent && !m.profiling.get(no) {
                        return false;
                    }
                    match index.column.get(no as usize) {
                        NONE => wanted.iter().enumerate().any(|(v, w)| *w && index.bitmaps[v].contains(no)),
                        v => wanted[usize::from(v)],
                    }
                }
                Check::Narrow { codes, table, index, wanted, consent } => {
                    let code = codes[no as usize];
                    if table[usize::from(code)] {
                        return !*consent || m.profiling.get(no);
                    }
                    // Several values (no single code): ask the value bitmaps.
                    code == u8::MAX
                        && (!*consent || m.profiling.get(no))
                        && wanted.iter().enumerate().any(|(v, w)| *w && index.bitmaps[v].contains(no))
                }
            }
        };
        // Blocks of 64 words: each source is ANDed into a small buffer (vectorised, streaming
        // through memory once), then the buffer's set bits are checked.
        const BLOCK: usize = 64;
        let run = |words: std::ops::Range<usize>| -> (Vec<u32>, u64) {
            let mut out = Vec::new();
            let mut count = 0u64;
            let mut buf = [0u64; BLOCK];
            let mut start = words.start;
            while start < words.end {
                let end = (start + BLOCK).min(words.end);
                let n = end - start;
                d_words_from(with[0].words(), start, end, &mut buf);
                for d in &with[1..] {
                    match d.words().get(start..end) {
                        Some(src) => {
                            for (b, s) in buf[..n].iter_mut().zip(src) {
                                *b &= s;
                            }
                        }
                        None => {
                            // A mirror shorter than the others: its missing words are empty.
                            let mut tmp = [0u64; BLOCK];
                            d_words_from(d.words(), start, end, &mut tmp);
                            for (b, s) in buf[..n].iter_mut().zip(&tmp[..n]) {
                                *b &= s;
                            }
                        }
                    }
                }
                for d in &without {
                    let mut tmp = [0u64; BLOCK];
                    d_words_from(d.words(), start, end, &mut tmp);
                    for (b, s) in buf[..n].iter_mut().zip(&tmp[..n]) {
                        *b &= !s;
                    }
                }
                for (i, word) in buf[..n].iter().enumerate() {
                    let mut bits = *word;
                    while bits != 0 {
                        let no = ((start + i) as u32) * 64 + bits.trailing_zeros();
                        bits &= bits - 1;
                        if checks.iter().all(|c| pass(no, c)) {
                            count += 1;
                            if members {
                                out.push(no);
                            }
                        }
                    }
                }
                start = end;
            }
            (out, count)
        };
        let words = m.present.words().len();
        let (a, b) = if words >= 1 << 14 {
            std::thread::scope(|s| {
                let high = s.spawn(|| run(words / 2..words));
                let low = run(0..words / 2);
                (low, high.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            })
        } else {
            (run(0..words), (Vec::new(), 0))
        };
        Some(if members {
            Fused::Members(RoaringBitmap::from_sorted_iter(a.0.into_iter().chain(b.0)).unwrap_or_default())
        } else {
            Fused::Count(a.1 + b.1)
        })
    }

    /// Predicates answered by one or two stored bitmaps, without building anything.
    fn is_plain_bitmap(&self, rule: &Rule) -> bool {
        match rule {
            Rule::Tag(_) | Rule::Rfm { .. } => true,
            Rule::Lifecycle(s) => s.len() == 1,
            Rule::Points { min, max } => self.points_bands(*min, *max).2,
            _ => false,
        }
    }

    /// The stored bitmaps a plain predicate is: members must be in each of `with` and in
    /// none of `without`.
    fn plain_bitmaps<'a>(
        &'a self,
        rule: &Rule,
        with: &mut Vec<&'a RoaringBitmap>,
        without: &mut Vec<&'a RoaringBitmap>,
    ) {
        static EMPTY: std::sync::OnceLock<RoaringBitmap> = std::sync::OnceLock::new();
        match rule {
            Rule::Tag(t) => with.push(self.tags.get(t).unwrap_or_else(|| EMPTY.get_or_init(RoaringBitmap::new))),
            Rule::Lifecycle(s) => with.push(&self.lifecycle[s[0].index()]),
            Rule::Rfm { r, f, m } => {
                // A range starts at score 1 or more: "scored" is implied.
                for (dim, range) in [r, f, m].into_iter().enumerate() {
                    if let Some((lo, hi)) = range {
                        with.push(&self.rfm_ge[dim][usize::from(*lo - 1)]);
                        if *hi < self.rfm_k {
                            without.push(&self.rfm_ge[dim][usize::from(*hi)]);
                        }
                    }
                }
            }
            Rule::Points { min, max } => {
                let (lower, upper, _) = self.points_bands(*min, *max);
                with.push(lower.map_or(&self.present, |i| &self.points_ge[i]));
                if let Some(i) = upper {
                    without.push(&self.points_ge[i]);
                }
            }
            _ => unreachable!("only plain predicates"),
        }
    }

    /// The candidates that satisfy `rule`, checked one by one; dimension values are turned
    /// into codes once, not looked up per member.
    fn filter(&self, candidates: &RoaringBitmap, rule: &Rule, today: i32) -> RoaringBitmap {
        // Large candidate sets are split in two halves checked on two threads: the check is
        // bound by reading the column, and each core brings its own bandwidth.
        if candidates.len() >= 65_536 {
            let mid = candidates.select((candidates.len() / 2) as u32).unwrap_or(0);
            let mut low = candidates.clone();
            low.remove_range(mid..);
            let mut high = candidates.clone();
            high.remove_range(..mid);
            let (a, b) = std::thread::scope(|s| {
                let h = s.spawn(|| self.filter_serial(&high, rule, today));
                let a = self.filter_serial(&low, rule, today);
                (a, h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            });
            return a | b;
        }
        self.filter_serial(candidates, rule, today)
    }

    fn filter_serial(&self, candidates: &RoaringBitmap, rule: &Rule, today: i32) -> RoaringBitmap {
        let keep: Vec<u32> = match rule {
            Rule::Dim { dim, values } => {
                let d = &self.dims[dim_slot(*dim)];
                let mut wanted = vec![false; d.values.len()];
                for c in values.iter().filter_map(|v| d.lookup.get(v)) {
                    wanted[usize::from(*c)] = true;
                }
                let consent = dim.from_events();
                candidates
                    .iter()
                    .filter(|no| {
                        if consent && !self.profiling.contains(*no) {
                            return false;
                        }
                        match d.column.get(*no as usize) {
                            NONE => wanted.iter().enumerate().any(|(c, w)| *w && d.bitmaps[c].contains(*no)),
                            c => wanted[usize::from(c)],
                        }
                    })
                    .collect()
            }
            Rule::Points { min, max } => candidates
                .iter()
                .filter(|no| (*min..=*max).contains(&i64::from(self.points_col[*no as usize])))
                .collect(),
            _ => candidates.iter().filter(|no| self.check(*no, rule, today)).collect(),
        };
        RoaringBitmap::from_sorted_iter(keep).unwrap_or_default()
    }

    /// A rough size of a predicate's answer, to order the work of an `all`.
    fn estimate(&self, rule: &Rule) -> u64 {
        let n = self.present.len();
        match rule {
            Rule::Tag(t) => self.tags.get(t).map_or(0, RoaringBitmap::len),
            Rule::Lifecycle(s) => s.iter().map(|s| self.lifecycle[s.index()].len()).sum(),
            Rule::Dim { dim, values } => {
                let d = &self.dims[dim_slot(*dim)];
                values.iter().filter_map(|v| d.lookup.get(v)).map(|c| d.bitmaps[usize::from(*c)].len()).sum()
            }
            Rule::Rfm { .. } => n / 4,
            Rule::Points { min, max } => {
                let (lower, upper, _) = self.points_bands(*min, *max);
                let below = lower.map_or(n, |i| self.points_ge[i].len());
                below.saturating_sub(upper.map_or(0, |i| self.points_ge[i].len()))
            }
            Rule::Attr { name, .. } => self.attrs.get(name).map_or(0, |m| m.len() as u64),
            Rule::Event { .. } => n / 2,
            Rule::All(_) | Rule::Any(_) | Rule::Not(_) => n,
        }
    }

    /// The points bands around `[min, max]`: the "≥ bound" bitmaps below and above, and whether
    /// they give the answer exactly (no member needs checking).
    fn points_bands(&self, min: i64, max: i64) -> (Option<usize>, Option<usize>, bool) {
        let lower = POINT_BOUNDS.iter().rposition(|b| i64::from(*b) <= min);
        let upper = POINT_BOUNDS.iter().position(|b| i64::from(*b) > max);
        let lower_exact = match lower {
            Some(i) => i64::from(POINT_BOUNDS[i]) == min,
            None => min <= 0,
        };
        let upper_exact = max == i64::MAX || upper.is_some_and(|i| i64::from(POINT_BOUNDS[i]) == max + 1);
        (lower, upper, lower_exact && upper_exact)
    }

    /// Members whose points may lie in `[min, max]`, and whether that set is exact.
    fn points_superset(&self, min: i64, max: i64) -> (RoaringBitmap, bool) {
        let lower = POINT_BOUNDS.iter().rposition(|b| i64::from(*b) <= min);
        let mut set = match lower {
            Some(i) => self.points_ge[i].clone(),
            None => self.present.clone(),
        };
        let lower_exact = match lower {
            Some(i) => i64::from(POINT_BOUNDS[i]) == min,
            None => min <= 0,
        };
        let upper = POINT_BOUNDS.iter().position(|b| i64::from(*b) > max);
        if let Some(i) = upper {
            set -= &self.points_ge[i];
        }
        let upper_exact = max == i64::MAX || upper.is_some_and(|i| i64::from(POINT_BOUNDS[i]) == max + 1);
        (set, lower_exact && upper_exact)
    }

    fn event_count(&self, no: u32, name: &str, from: i32, to: i32) -> u32 {
        self.events.get(name).map_or(0, |days| days.range(from..=to).map(|(_, d)| d.count(no)).sum())
    }

    fn attr_matches(&self, value: &J, rule: &Rule) -> bool {
        match rule {
            Rule::Attr { op, value: want, .. } => compare(value, *op, want),
            _ => false,
        }
    }

    /// One member against a rule, from the columns.
    fn check(&self, no: u32, rule: &Rule, today: i32) -> bool {
        let i = no as usize;
        match rule {
            Rule::All(c) => c.iter().all(|r| self.check(no, r, today)),
            Rule::Any(c) => c.iter().any(|r| self.check(no, r, today)),
            Rule::Not(r) => !self.check(no, r, today),
            Rule::Tag(t) => self.tags.get(t).is_some_and(|b| b.contains(no)),
            Rule::Lifecycle(stages) => stages.iter().any(|s| s.index() == usize::from(self.lifecycle_col[i])),
            Rule::Dim { dim, values } => {
                if dim.from_events() && !self.profiling.contains(no) {
                    return false;
                }
                let d = &self.dims[dim_slot(*dim)];
                let col = d.column.get(i);
                values
                    .iter()
                    .filter_map(|v| d.lookup.get(v))
                    .any(|c| if col != NONE { *c == col } else { d.bitmaps[usize::from(*c)].contains(no) })
            }
            Rule::Rfm { r, f, m } => {
                let s = self.rfm_col[i];
                s[0] > 0
                    && [r, f, m].into_iter().zip(s).all(|(range, v)| range.is_none_or(|(lo, hi)| lo <= v && v <= hi))
            }
            Rule::Points { min, max } => {
                let p = i64::from(self.points_col[i]);
                *min <= p && p <= *max
            }
            Rule::Attr { name, .. } => {
                self.attrs.get(name).and_then(|m| m.get(&no)).is_some_and(|v| self.attr_matches(v, rule))
            }
            Rule::Event { name, within_days, min_count } => {
                self.profiling.contains(no)
                    && self.event_count(no, name, today - *within_days as i32 + 1, today) >= *min_count
            }
        }
    }

    /// Members per RFM cell (scored members only), and per lifecycle stage.
    pub fn rfm_cells(&self) -> BTreeMap<Scores, u64> {
        let mut cells: BTreeMap<(u8, u8, u8), u64> = BTreeMap::new();
        for no in &self.rfm_ge[0][0] {
            let [r, f, m] = self.rfm_col[no as usize];
            *cells.entry((r, f, m)).or_default() += 1;
        }
        cells.into_iter().map(|((r, f, m), n)| (Scores { r, f, m }, n)).collect()
    }

    pub fn lifecycle_counts(&self) -> BTreeMap<Stage, u64> {
        Stage::ALL.iter().map(|s| (*s, self.lifecycle[s.index()].len())).collect()
    }

    /// The values of a dimension and how many members hold each.
    pub fn dim_counts(&self, dim: Dim) -> BTreeMap<String, u64> {
        let d = &self.dims[dim_slot(dim)];
        d.values.iter().zip(&d.bitmaps).filter(|(_, b)| !b.is_empty()).map(|(v, b)| (v.clone(), b.len())).collect()
    }

    /// A member's (first) value of a dimension.
    pub fn dim_value(&self, member_id: &str, dim: Dim) -> Option<String> {
        let no = *self.nos.get(member_id)?;
        let d = &self.dims[dim_slot(dim)];
        match d.column.get(no as usize) {
            NONE => d.values.iter().zip(&d.bitmaps).find(|(_, b)| b.contains(no)).map(|(v, _)| v.clone()),
            c => Some(d.values[usize::from(c)].clone()),
        }
    }

    /// All of a member's values of a dimension.
    pub fn dim_values(&self, member_id: &str, dim: Dim) -> Vec<String> {
        let Some(no) = self.nos.get(member_id).copied() else { return Vec::new() };
        let d = &self.dims[dim_slot(dim)];
        match d.column.get(no as usize) {
            NONE => d.values.iter().zip(&d.bitmaps).filter(|(_, b)| b.contains(no)).map(|(v, _)| v.clone()).collect(),
            c => vec![d.values[usize::from(c)].clone()],
        }
    }

    /// The manual tags a member holds.
    pub fn member_tags(&self, member_id: &str) -> Vec<String> {
        let Some(no) = self.nos.get(member_id).copied() else { return Vec::new() };
        self.tags.iter().filter(|(_, b)| b.contains(no)).map(|(t, _)| t.clone()).collect()
    }

    pub fn has_profiling(&self, member_id: &str) -> bool {
        self.nos.get(member_id).is_some_and(|no| self.profiling.contains(*no))
    }

    /// A member's RFM scores (zero when never bought) and lifecycle stage.
    pub fn scores(&self, member_id: &str) -> Option<(Scores, Stage)> {
        let no = *self.nos.get(member_id)?;
        if !self.present.contains(no) {
            return None;
        }
        let [r, f, m] = self.rfm_col[no as usize];
        Some((Scores { r, f, m }, Stage::ALL[usize::from(self.lifecycle_col[no as usize])]))
    }

    /// Bytes held by bitmaps and columns (not the member-id map), for the memory figure.
    pub fn memory_bytes(&self) -> usize {
        let bitmap = |b: &RoaringBitmap| b.serialized_size();
        let mut total = bitmap(&self.present) + bitmap(&self.profiling);
        total += self.tags.values().map(bitmap).sum::<usize>();
        for d in &self.dims {
            total += d.bitmaps.iter().map(bitmap).sum::<usize>() + d.column.bytes();
        }
        total += self.lifecycle.iter().map(bitmap).sum::<usize>() + self.lifecycle_col.len();
        total += self.rfm_ge.iter().flatten().map(bitmap).sum::<usize>() + self.rfm_col.len() * 3;
        total += self.points_ge.iter().map(bitmap).sum::<usize>() + self.points_col.len() * 4;
        total += self.attrs.values().map(|m| m.len() * 48).sum::<usize>();
        for days in self.events.values() {
            for d in days.values() {
                total += bitmap(&d.members) + d.extra.len() * 8;
            }
        }
        let m = &self.mirror;
        total += m.present.bytes() + m.profiling.bytes();
        total += m
            .lifecycle
            .iter()
            .chain(m.rfm_ge.iter().flatten())
            .chain(&m.points_ge)
            .chain(m.tags.values())
            .map(Dense::bytes)
            .sum::<usize>();
        total
    }
}

/// Copy `words[start..end]` (as far as it exists) into `out`; returns how many were copied.
fn d_words_from(words: &[u64], start: usize, end: usize, out: &mut [u64]) -> usize {
    let have = words.len().clamp(start, end) - start;
    out[..have].copy_from_slice(&words[start..start + have]);
    out[have..end - start].fill(0);
    have
}

fn dim_slot(d: Dim) -> usize {
    Dim::ALL.iter().position(|x| *x == d).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ronghe_domain::profile::AttributeKind;
    use ronghe_domain::segment::Vocabulary;
    use std::collections::{BTreeSet, HashSet};

    const TODAY: i32 = 20_000;
    const TAGS: &[&str] = &["vip", "new_mum", "runner"];
    const CITIES: &[&str] = &["杭州", "上海", "北京", "深圳"];

    fn facts() -> impl Strategy<Value = Facts> {
        (
            proptest::collection::btree_set(0..TAGS.len(), 0..3),
            0..CITIES.len() + 1,
            0usize..5,
            (0u8..=5, 1u8..=5, 1u8..=5),
            0i64..25_000,
            proptest::option::of(0i64..50),
            proptest::collection::vec((0usize..2, 0i32..12, 1u32..4), 0..5),
            any::<bool>(),
            proptest::collection::btree_set(0..CITIES.len(), 0..3),
        )
            .prop_map(|(tags, city, stage, (r, f, m), points, size, events, profiling, browsed)| {
                let mut fa = Facts { points, profiling, ..Facts::default() };
                fa.tags = tags.into_iter().map(|t| TAGS[t].to_string()).collect();
                if city < CITIES.len() {
                    fa.dims.insert(Dim::City, [CITIES[city].to_string()].into_iter().collect());
                }
                let browsed: BTreeSet<String> = browsed.into_iter().map(|c| CITIES[c].to_string()).collect();
                if !browsed.is_empty() {
                    fa.dims.insert(Dim::BrowsedCategory, browsed);
                }
                fa.lifecycle = Stage::ALL[stage];
                fa.rfm = if r == 0 { Scores::default() } else { Scores { r, f, m } };
                if let Some(s) = size {
                    fa.attrs.insert("size".into(), J::from(s));
                }
                for (e, back, n) in events {
                    let name = ["product_viewed", "store_entry"][e].to_string();
                    *fa.events.entry(name).or_default().entry(TODAY - back).or_default() += n;
                }
                fa
            })
    }

    fn rule_json() -> impl Strategy<Value = J> {
        let leaf = prop_oneof![
            (0..TAGS.len()).prop_map(|t| serde_json::json!({"tag": TAGS[t]})),
            (0usize..5).prop_map(|s| serde_json::json!({"lifecycle": Stage::ALL[s].as_str()})),
            proptest::collection::vec(0..CITIES.len(), 1..4).prop_map(
                |c| serde_json::json!({"dim": "city", "in": c.iter().map(|i| CITIES[*i]).collect::<Vec<_>>()})
            ),
            (0..CITIES.len()).prop_map(|c| serde_json::json!({"dim": "browsed_category", "in": [CITIES[c]]})),
            (1u8..=5, 0u8..=4, 1u8..=5)
                .prop_map(|(a, w, b)| { serde_json::json!({"rfm": {"r": [a, (a + w).min(5)], "f": [1, b]}}) }),
            (0i64..25_000, 0i64..25_000)
                .prop_map(|(a, b)| serde_json::json!({"points": {"ge": a.min(b), "le": a.max(b)}})),
            prop_oneof![Just(0i64), Just(1_000), Just(5_000), Just(1_234)]
                .prop_map(|a| serde_json::json!({"points": {"ge": a}})),
            (0i64..50, 0usize..6).prop_map(|(v, op)| {
                let op = ["eq", "ne", "lt", "le", "gt", "ge"][op];
                serde_json::json!({"attr": "size", "op": op, "value": v})
            }),
            (0usize..2, 1u32..14, 1u32..5).prop_map(|(e, d, n)| {
                let name = ["product_viewed", "store_entry"][e];
                serde_json::json!({"event": {"name": name, "within_days": d, "min_count": n}})
            }),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 1..4).prop_map(|v| serde_json::json!({"all": v})),
                proptest::collection::vec(inner.clone(), 1..4).prop_map(|v| serde_json::json!({"any": v})),
                inner.prop_map(|v| serde_json::json!({"not": v})),
            ]
        })
    }

    fn parse(rule: &J) -> Rule {
        let mut tags: BTreeSet<String> = TAGS.iter().map(|t| t.to_string()).collect();
        tags.insert("vip".into());
        let attributes = [("size".to_string(), AttributeKind::Number)].into_iter().collect();
        Rule::parse(rule, &Vocabulary { tags: &tags, attributes: &attributes, rfm_k: 5 })
            .expect("generated rules are valid")
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        /// The bitmap answer equals the row-by-row reference evaluation, also after members
        /// are updated and removed.
        #[test]
        fn bitmaps_agree_with_the_reference(
            members in proptest::collection::vec(facts(), 1..80),
            updates in proptest::collection::vec((0usize..80, facts()), 0..20),
            removed in proptest::collection::btree_set(0usize..80, 0..5),
            rules in proptest::collection::vec(rule_json(), 1..6),
            filter_max in prop_oneof![Just(0u64), 0u64..100],
            fused in any::<bool>(),
        ) {
            let mut index = AudienceIndex::new(5).with_filter_max(filter_max).with_fused_min(if fused { 0 } else { u64::MAX });
            let mut model: BTreeMap<String, Facts> = BTreeMap::new();
            for (i, f) in members.iter().enumerate() {
                index.upsert(&format!("m{i}"), f, true);
                model.insert(format!("m{i}"), f.clone());
            }
            for (i, f) in &updates {
                let id = format!("m{}", i % members.len());
                index.upsert(&id, f, true);
                model.insert(id, f.clone());
            }
            for i in &removed {
                let id = format!("m{}", i % members.len());
                index.remove(&id);
                model.remove(&id);
            }
            for rule in &rules {
                let r = parse(rule);
                let want: HashSet<&str> = model.iter().filter(|(_, f)| r.matches(f, TODAY)).map(|(id, _)| id.as_str()).collect();
                let got: HashSet<&str> = index.members(&r, TODAY).into_iter().collect();
                prop_assert_eq!(&got, &want, "rule {}", rule);
                prop_assert_eq!(index.count(&r, TODAY), want.len() as u64, "count of {}", rule);
                for id in model.keys() {
                    prop_assert_eq!(index.matches(id, &r, TODAY), want.contains(id.as_str()));
                }
            }
        }
    }

    /// Large candidate sets (checked on two threads) and dimensions with more than 254 values
    /// (two-byte codes) answer like the reference.
    #[test]
    fn many_members_and_many_values() {
        // Always check one by one after the bitmaps, so that 100,000 candidates go to two threads.
        let mut index = AudienceIndex::new(5).with_filter_max(u64::MAX).with_fused_min(u64::MAX);
        let mut fused = AudienceIndex::new(5).with_fused_min(0);
        let mut model = Vec::new();
        for i in 0..150_000u32 {
            let mut f = Facts { points: i64::from(i % 3_000), ..Facts::default() };
            f.dims.insert(Dim::City, [format!("c{}", i % 300)].into_iter().collect());
            if i % 3 == 0 {
                f.tags.insert("vip".into());
            }
            index.upsert(&format!("m{i}"), &f, true);
            fused.upsert(&format!("m{i}"), &f, true);
            model.push(f);
        }
        let rule = parse(
            &serde_json::json!({"all": [{"dim": "city", "in": ["c3", "c270", "c299"]}, {"points": {"ge": 1000}}]}),
        );
        let want = model.iter().filter(|f| rule.matches(f, TODAY)).count() as u64;
        assert!(want > 0);
        assert_eq!(index.count(&rule, TODAY), want);
        assert_eq!(fused.count(&rule, TODAY), want);
    }

    #[test]
    fn events_added_later_count_and_old_days_are_pruned() {
        let mut index = AudienceIndex::new(5);
        index.upsert("a", &Facts { profiling: true, ..Facts::default() }, true);
        index.upsert("b", &Facts::default(), true);
        let rule = parse(&serde_json::json!({"event": {"name": "product_viewed", "within_days": 7, "min_count": 2}}));
        index.add_event("a", "product_viewed", TODAY - 1, 1);
        assert_eq!(index.count(&rule, TODAY), 0);
        index.add_event("a", "product_viewed", TODAY, 1);
        // "b" has not consented to profiling: its events never match.
        index.add_event("b", "product_viewed", TODAY, 5);
        assert_eq!(index.members(&rule, TODAY), vec!["a"]);
        // A week later the first event has left the window.
        assert_eq!(index.count(&rule, TODAY + 6), 0);
        index.prune_events(TODAY);
        let one = parse(&serde_json::json!({"event": {"name": "product_viewed", "within_days": 30}}));
        assert_eq!(index.count(&one, TODAY), 1);
    }
}
