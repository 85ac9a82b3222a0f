//! The segment rule language of API.md: parsing from JSON with the field at fault, checking
//! names against what exists, and the reference (row-by-row) evaluation against one member's
//! [`Facts`]. The audience index answers the same rules with bitmaps; property tests hold the
//! two to the same answers.

use crate::dims::Dim;
use crate::error::{DomainError, Validator};
use crate::lifecycle::Stage;
use crate::profile::AttributeKind;
use crate::rfm::Scores;
use serde_json::Value as J;
use std::collections::{BTreeMap, BTreeSet};

/// The most days an event predicate may look back (events are kept at least this long).
pub const MAX_WITHIN_DAYS: u32 = 366;
/// Nesting and size limits: a rule is typed by a person, not generated without bound.
const MAX_DEPTH: usize = 16;
const MAX_NODES: usize = 512;

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    All(Vec<Rule>),
    Any(Vec<Rule>),
    Not(Box<Rule>),
    Tag(String),
    Lifecycle(Vec<Stage>),
    Dim {
        dim: Dim,
        values: Vec<String>,
    },
    /// Inclusive score ranges; `None` leaves a dimension free.
    Rfm {
        r: Option<(u8, u8)>,
        f: Option<(u8, u8)>,
        m: Option<(u8, u8)>,
    },
    Attr {
        name: String,
        op: Op,
        value: J,
    },
    /// At least `min_count` events named `name` on the last `within_days` days, today included.
    Event {
        name: String,
        within_days: u32,
        min_count: u32,
    },
    /// Points balance within the bounds (inclusive).
    Points {
        min: i64,
        max: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "in" => Op::In,
            _ => return None,
        })
    }
}

/// What a rule may name: the tags that exist, the declared custom attributes, the scale of
/// RFM scores.
pub struct Vocabulary<'a> {
    pub tags: &'a BTreeSet<String>,
    pub attributes: &'a BTreeMap<String, AttributeKind>,
    pub rfm_k: u8,
}

/// Profile fields a rule may compare with `attr` besides the declared custom attributes.
pub const PROFILE_ATTRS: &[&str] = &["city", "gender"];

impl Rule {
    /// Parse and check a rule; errors name the field at fault (`rule.all[1].tag`).
    pub fn parse(json: &J, vocab: &Vocabulary) -> Result<Rule, DomainError> {
        let mut v = Validator::new();
        let mut nodes = 0;
        let rule = parse_node(json, "rule", 0, &mut nodes, vocab, &mut v);
        v.finish()?;
        rule.ok_or_else(|| DomainError::field("rule", "not a rule"))
    }

    /// Whether the rule uses behaviour events (directly or through event-derived dimensions),
    /// which only apply to members whose profiling consent is granted.
    pub fn uses_events(&self) -> bool {
        match self {
            Rule::All(v) | Rule::Any(v) => v.iter().any(Rule::uses_events),
            Rule::Not(r) => r.uses_events(),
            Rule::Event { .. } => true,
            Rule::Dim { dim, .. } => dim.from_events(),
            _ => false,
        }
    }

    /// Replace each rule tag by its rule (rule tags are named rules; their rules name no
    /// other rule tag), so that the index answers them live.
    pub fn expand(self, rule_tags: &BTreeMap<String, Rule>) -> Rule {
        match self {
            Rule::All(v) => Rule::All(v.into_iter().map(|r| r.expand(rule_tags)).collect()),
            Rule::Any(v) => Rule::Any(v.into_iter().map(|r| r.expand(rule_tags)).collect()),
            Rule::Not(r) => Rule::Not(Box::new(r.expand(rule_tags))),
            Rule::Tag(t) => match rule_tags.get(&t) {
                Some(r) => r.clone(),
                None => Rule::Tag(t),
            },
            other => other,
        }
    }

    /// The tags a rule names.
    pub fn tags(&self) -> Vec<&str> {
        match self {
            Rule::All(v) | Rule::Any(v) => v.iter().flat_map(Rule::tags).collect(),
            Rule::Not(r) => r.tags(),
            Rule::Tag(t) => vec![t.as_str()],
            _ => Vec::new(),
        }
    }

    /// The reference evaluation for one member on `today` (days since 1970 in the tenant's zone).
    pub fn matches(&self, f: &Facts, today: i32) -> bool {
        match self {
            Rule::All(v) => v.iter().all(|r| r.matches(f, today)),
            Rule::Any(v) => v.iter().any(|r| r.matches(f, today)),
            Rule::Not(r) => !r.matches(f, today),
            Rule::Tag(t) => f.tags.contains(t),
            Rule::Lifecycle(stages) => stages.contains(&f.lifecycle),
            Rule::Dim { dim, values } => {
                (!dim.from_events() || f.profiling)
                    && f.dims.get(dim).is_some_and(|have| values.iter().any(|v| have.contains(v)))
            }
            Rule::Rfm { r, f: fr, m } => {
                let within = |range: &Option<(u8, u8)>, s: u8| range.is_none_or(|(a, b)| a <= s && s <= b);
                f.rfm.is_scored() && within(r, f.rfm.r) && within(fr, f.rfm.f) && within(m, f.rfm.m)
            }
            Rule::Attr { name, op, value } => f.attrs.get(name).is_some_and(|have| compare(have, *op, value)),
            Rule::Event { name, within_days, min_count } => {
                if !f.profiling {
                    return false;
                }
                let from = today - *within_days as i32 + 1;
                let n: u64 = f
                    .events
                    .get(name)
                    .map(|days| days.range(from..=today).map(|(_, c)| u64::from(*c)).sum())
                    .unwrap_or(0);
                n >= u64::from(*min_count)
            }
            Rule::Points { min, max } => *min <= f.points && f.points <= *max,
        }
    }
}

/// Compare an attribute's value with a rule's: numbers as numbers, strings (and dates, which
/// are `YYYY-MM-DD`) by their text, booleans for equality only. A different type never matches.
pub fn compare(have: &J, op: Op, want: &J) -> bool {
    use std::cmp::Ordering;
    if op == Op::In {
        return want.as_array().is_some_and(|vs| vs.iter().any(|w| compare(have, Op::Eq, w)));
    }
    let ord: Option<Ordering> = match (have, want) {
        (J::Number(a), J::Number(b)) => a.as_f64().zip(b.as_f64()).and_then(|(a, b)| a.partial_cmp(&b)),
        (J::String(a), J::String(b)) => Some(a.cmp(b)),
        (J::Bool(a), J::Bool(b)) if matches!(op, Op::Eq | Op::Ne) => Some(a.cmp(b)),
        _ => None,
    };
    let Some(ord) = ord else { return false };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::In => unreachable!("handled above"),
    }
}

/// Everything a rule can ask about one member: what the audience index holds for them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub tags: BTreeSet<String>,
    /// Built-in dimensions; event-derived ones are present whatever the consent, and rules
    /// ignore them without profiling consent.
    pub dims: BTreeMap<Dim, BTreeSet<String>>,
    pub lifecycle: Stage,
    pub rfm: Scores,
    pub attrs: BTreeMap<String, J>,
    pub points: i64,
    /// Event name → day → count, within the retention.
    pub events: BTreeMap<String, BTreeMap<i32, u32>>,
    pub profiling: bool,
}

fn parse_node(
    json: &J,
    at: &str,
    depth: usize,
    nodes: &mut usize,
    vocab: &Vocabulary,
    v: &mut Validator,
) -> Option<Rule> {
    *nodes += 1;
    if depth > MAX_DEPTH || *nodes > MAX_NODES {
        v.push(at, format!("rules nest at most {MAX_DEPTH} deep and hold at most {MAX_NODES} predicates"));
        return None;
    }
    let Some(obj) = json.as_object() else {
        v.push(at, "a rule is an object such as {\"tag\":\"vip\"}");
        return None;
    };
    if obj.len() != 1 && !(obj.contains_key("dim") || obj.contains_key("attr") || obj.contains_key("points")) {
        v.push(at, "a rule object has exactly one key: all, any, not, tag, lifecycle, dim, rfm, attr, event or points");
        return None;
    }
    let (key, val) = if let Some(k) = ["dim", "attr"].iter().find(|k| obj.contains_key(**k)) {
        (*k, &obj[*k])
    } else {
        let (k, val) = obj.iter().next()?;
        (k.as_str(), val)
    };
    let here = format!("{at}.{key}");
    match key {
        "all" | "any" => {
            let Some(items) = val.as_array().filter(|a| !a.is_empty()) else {
                v.push(here, "a non-empty list of rules");
                return None;
            };
            let children: Vec<Option<Rule>> = items
                .iter()
                .enumerate()
                .map(|(i, c)| parse_node(c, &format!("{here}[{i}]"), depth + 1, nodes, vocab, v))
                .collect();
            let children: Option<Vec<Rule>> = children.into_iter().collect();
            let children = children?;
            Some(if key == "all" { Rule::All(children) } else { Rule::Any(children) })
        }
        "not" => parse_node(val, &here, depth + 1, nodes, vocab, v).map(|r| Rule::Not(Box::new(r))),
        "tag" => match val.as_str() {
            Some(t) if vocab.tags.contains(t) => Some(Rule::Tag(t.to_string())),
            Some(t) => {
                v.push(here, format!("unknown tag {t:?}"));
                None
            }
            None => {
                v.push(here, "a tag name");
                None
            }
        },
        "lifecycle" => {
            let names: Vec<&J> = match val {
                J::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            let stages: Option<Vec<Stage>> = names.iter().map(|n| n.as_str().and_then(Stage::parse)).collect();
            match stages {
                Some(s) if !s.is_empty() => Some(Rule::Lifecycle(s)),
                _ => {
                    v.push(here, "one of new, growing, mature, silent, churned (or a list of them)");
                    None
                }
            }
        }
        "dim" => {
            let dim = val.as_str().and_then(Dim::parse);
            let values: Option<Vec<String>> = obj
                .get("in")
                .and_then(J::as_array)
                .filter(|a| !a.is_empty())
                .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_string)).collect());
            if obj.keys().any(|k| k != "dim" && k != "in") {
                v.push(at, "a dimension rule has the keys dim and in");
            }
            if dim.is_none() {
                v.push(here, format!("unknown dimension {val}; see docs/cdp.md for the built-in dimensions"));
            }
            if values.is_none() {
                v.push(format!("{at}.in"), "a non-empty list of values");
            }
            Some(Rule::Dim { dim: dim?, values: values? })
        }
        "rfm" => {
            let Some(o) = val.as_object().filter(|o| !o.is_empty()) else {
                v.push(here, "an object such as {\"r\":[4,5]}");
                return None;
            };
            let mut ranges = [None, None, None];
            for (name, range) in o {
                let slot = match name.as_str() {
                    "r" => 0,
                    "f" => 1,
                    "m" => 2,
                    _ => {
                        v.push(format!("{here}.{name}"), "unknown RFM dimension; use r, f or m");
                        continue;
                    }
                };
                let pair = range.as_array().filter(|a| a.len() == 2).and_then(|a| {
                    let lo = a[0].as_u64()?;
                    let hi = a[1].as_u64()?;
                    (1 <= lo && lo <= hi && hi <= u64::from(vocab.rfm_k)).then_some((lo as u8, hi as u8))
                });
                match pair {
                    Some(p) => ranges[slot] = Some(p),
                    None => v.push(
                        format!("{here}.{name}"),
                        format!("an inclusive range [a,b] with 1 ≤ a ≤ b ≤ {}", vocab.rfm_k),
                    ),
                }
            }
            Some(Rule::Rfm { r: ranges[0], f: ranges[1], m: ranges[2] })
        }
        "attr" => {
            let name = val.as_str().unwrap_or_default().to_string();
            let kind = if PROFILE_ATTRS.contains(&name.as_str()) {
                Some(AttributeKind::String)
            } else {
                vocab.attributes.get(&name).copied()
            };
            if obj.keys().any(|k| !matches!(k.as_str(), "attr" | "op" | "value")) {
                v.push(at, "an attribute rule has the keys attr, op and value");
            }
            if kind.is_none() {
                v.push(here, format!("unknown attribute {val}; declare it with PUT /v1/attributes/{{name}}"));
            }
            let op = obj.get("op").and_then(J::as_str).and_then(Op::parse);
            if op.is_none() {
                v.push(format!("{at}.op"), "one of eq, ne, lt, le, gt, ge, in");
            }
            let value = obj.get("value").cloned().unwrap_or(J::Null);
            if let (Some(kind), Some(op)) = (kind, op) {
                let ok = match (&value, op) {
                    (J::Array(items), Op::In) => {
                        !items.is_empty() && items.iter().all(|i| !i.is_null() && kind.check(i).is_ok())
                    }
                    (_, Op::In) => false,
                    (J::Null, _) => false,
                    (val, _) => kind.check(val).is_ok(),
                };
                if !ok {
                    let what = if op == Op::In { "a non-empty list of" } else { "a" };
                    v.push(format!("{at}.value"), format!("{what} {} value", kind.as_str()));
                }
            }
            Some(Rule::Attr { name, op: op?, value })
        }
        "event" => {
            let Some(o) = val.as_object() else {
                v.push(here, "an object {name, within_days, min_count}");
                return None;
            };
            let name = o.get("name").and_then(J::as_str).filter(|n| !n.is_empty() && n.len() <= 200);
            if name.is_none() {
                v.push(format!("{here}.name"), "an event name");
            }
            let within =
                o.get("within_days").and_then(J::as_u64).filter(|d| (1..=u64::from(MAX_WITHIN_DAYS)).contains(d));
            if within.is_none() {
                v.push(format!("{here}.within_days"), format!("between 1 and {MAX_WITHIN_DAYS}"));
            }
            let min_count = match o.get("min_count") {
                None => Some(1),
                Some(c) => c.as_u64().filter(|c| (1..=1_000_000).contains(c)),
            };
            if min_count.is_none() {
                v.push(format!("{here}.min_count"), "a count of at least 1");
            }
            if o.keys().any(|k| !matches!(k.as_str(), "name" | "within_days" | "min_count")) {
                v.push(here, "an event rule has the keys name, within_days and min_count");
            }
            Some(Rule::Event {
                name: crate::events::normalise_name(name?),
                within_days: within? as u32,
                min_count: min_count? as u32,
            })
        }
        "points" => {
            let Some(o) = val.as_object().filter(|o| !o.is_empty()) else {
                v.push(here, "an object such as {\"ge\":1000}");
                return None;
            };
            let (mut min, mut max) = (i64::MIN, i64::MAX);
            for (op, n) in o {
                let Some(n) = n.as_i64() else {
                    v.push(format!("{here}.{op}"), "an integer number of points");
                    continue;
                };
                match op.as_str() {
                    "ge" => min = min.max(n),
                    "gt" => min = min.max(n.saturating_add(1)),
                    "le" => max = max.min(n),
                    "lt" => max = max.min(n.saturating_sub(1)),
                    "eq" => (min, max) = (min.max(n), max.min(n)),
                    _ => v.push(format!("{here}.{op}"), "one of ge, gt, le, lt, eq"),
                }
            }
            Some(Rule::Points { min, max })
        }
        other => {
            v.push(
                format!("{at}.{other}"),
                "unknown rule; use all, any, not, tag, lifecycle, dim, rfm, attr, event or points",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vocab_parts() -> (BTreeSet<String>, BTreeMap<String, AttributeKind>) {
        let tags = ["vip".to_string(), "new_mum".to_string()].into_iter().collect();
        let attrs = [("shoe_size".to_string(), AttributeKind::Number), ("pet".to_string(), AttributeKind::String)]
            .into_iter()
            .collect();
        (tags, attrs)
    }

    fn parse(rule: J) -> Result<Rule, DomainError> {
        let (tags, attributes) = vocab_parts();
        Rule::parse(&rule, &Vocabulary { tags: &tags, attributes: &attributes, rfm_k: 5 })
    }

    fn fields(e: DomainError) -> Vec<String> {
        e.errors.into_iter().map(|e| e.field).collect()
    }

    /// Data-driven cases: `tests/cases/segments/{valid,invalid}/*.json`; an invalid case holds
    /// `{"rule": …, "fields": [the fields at fault]}`.
    #[test]
    fn rule_cases_from_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/segments");
        let mut seen = 0;
        for kind in ["valid", "invalid"] {
            let mut files: Vec<_> = std::fs::read_dir(dir.join(kind)).expect("case folder").flatten().collect();
            files.sort_by_key(|f| f.path());
            for f in files {
                let text = std::fs::read_to_string(f.path()).expect("readable case");
                let case: J = serde_json::from_str(&text).expect("case is JSON");
                let got = parse(case["rule"].clone());
                let name = f.path().display().to_string();
                if kind == "valid" {
                    assert!(got.is_ok(), "{name}: {got:?}");
                } else {
                    let want: Vec<String> = case["fields"]
                        .as_array()
                        .expect("fields")
                        .iter()
                        .map(|f| f.as_str().unwrap_or_default().to_string())
                        .collect();
                    assert_eq!(fields(got.expect_err(&name)), want, "{name}");
                }
                seen += 1;
            }
        }
        assert!(seen >= 10, "the case folders hold the examples");
    }

    #[test]
    fn reference_evaluation_of_each_predicate() {
        let mut f = Facts { points: 1500, profiling: true, ..Facts::default() };
        f.tags.insert("vip".into());
        f.dims.insert(Dim::City, ["杭州".to_string()].into_iter().collect());
        f.rfm = Scores { r: 4, f: 3, m: 1 };
        f.attrs.insert("shoe_size".into(), json!(38));
        f.events.entry("product_viewed".into()).or_default().insert(100, 2);
        let today = 106;
        let check = |f: &Facts, r: J| parse(r).map(|r| r.matches(f, today)).expect("valid rule");
        let yes = |r: J| check(&f, r);
        assert!(yes(
            json!({"all":[{"tag":"vip"},{"rfm":{"r":[4,5],"f":[3,5]}},{"dim":"city","in":["杭州"]},{"points":{"ge":1000}}]})
        ));
        assert!(!yes(json!({"rfm":{"m":[2,5]}})));
        assert!(yes(json!({"attr":"shoe_size","op":"ge","value":38})));
        assert!(!yes(json!({"attr":"shoe_size","op":"lt","value":38})));
        assert!(yes(json!({"attr":"shoe_size","op":"in","value":[37,38]})));
        // Day 100 is the 7th day back from day 106, today included.
        assert!(yes(json!({"event":{"name":"Product Viewed","within_days":7,"min_count":2}})));
        assert!(!yes(json!({"event":{"name":"product_viewed","within_days":6}})));
        assert!(!yes(json!({"event":{"name":"product_viewed","within_days":7,"min_count":3}})));
        assert!(yes(json!({"not":{"tag":"new_mum"}})));
        // Without profiling consent, event predicates simply do not match.
        let f = Facts { profiling: false, ..f.clone() };
        assert!(!check(&f, json!({"event":{"name":"product_viewed","within_days":7}})));
        assert!(check(&f, json!({"not":{"event":{"name":"product_viewed","within_days":7}}})));
    }
}
