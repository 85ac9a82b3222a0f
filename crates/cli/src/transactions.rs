//! `ronghe import transactions`: years of POS/ERP purchase history from CSV (API.md's format),
//! with a progress bar and a validation report. Each row's key — its `order_ref`, or a hash of
//! the row and its occurrence number — makes a second run change nothing. Imported orders earn
//! no points and move no stock; they feed RFM, lifecycle, dimensions and segments.

use crate::import::RowError;
use ronghe_domain::identity::{Identity, IdentityKind};
use ronghe_domain::{Millis, calendar};
use ronghe_store::Store;
use ronghe_store::history::{self, Imported, Transaction};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// Rows per transaction.
const CHUNK: usize = 2_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub rows: u64,
    pub imported: Imported,
    pub errors: Vec<RowError>,
}

impl Report {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "rows": self.rows, "orders": self.imported.orders, "duplicates": self.imported.duplicates,
            "new_members": self.imported.new_members,
            "errors": self.errors.iter().map(|e| json!({"line": e.line, "field": e.field, "message": e.message})).collect::<Vec<_>>(),
        })
    }
}

/// `amount` in yuan with at most two decimals → fen.
fn parse_yuan(s: &str) -> Option<i64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let fen: i64 = format!("{frac:0<2}").parse().ok()?;
    whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(fen)
}

/// `YYYY-MM-DD` (the start of that day in the tenant's zone) or RFC 3339.
fn parse_time(s: &str) -> Option<Millis> {
    if s.len() == 10 {
        return s.parse::<jiff::civil::Date>().ok().map(|d| calendar::start_of(calendar::day_of_date(d)));
    }
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond())
}

fn parse_row(
    line: u64,
    r: &csv::StringRecord,
    h: &csv::StringRecord,
    seen: &mut HashMap<[u8; 32], u32>,
    now: Millis,
) -> Result<Transaction, RowError> {
    let get = |name: &str| {
        h.iter().position(|c| c.trim() == name).and_then(|i| r.get(i)).map(str::trim).filter(|v| !v.is_empty())
    };
    let err = |field: &str, message: &str| RowError { line, field: field.into(), message: message.into() };
    let customer = get("member_id").ok_or_else(|| err("member_id", "required"))?;
    Identity::parse(IdentityKind::ExternalId, customer, None).map_err(|e| err("member_id", &e.message))?;
    let ordered_at = get("ordered_at")
        .ok_or_else(|| err("ordered_at", "required"))
        .and_then(|t| parse_time(t).ok_or_else(|| err("ordered_at", "YYYY-MM-DD or an RFC 3339 time")))?;
    if ordered_at > now {
        return Err(err("ordered_at", "in the future"));
    }
    let amount_fen = get("amount")
        .ok_or_else(|| err("amount", "required"))
        .and_then(|a| parse_yuan(a).ok_or_else(|| err("amount", "yuan with at most 2 decimals, not negative")))?;
    let quantity = match get("quantity") {
        None => 1,
        Some(q) => q
            .parse::<i64>()
            .ok()
            .filter(|q| (1..=1_000_000).contains(q))
            .ok_or_else(|| err("quantity", "a positive whole number"))?,
    };
    let channel = get("channel").unwrap_or("pos").to_string();
    let store_id = get("store_id").map(str::to_string);
    let sku = get("sku").map(str::to_string);
    let order_ref = match get("order_ref") {
        Some(r) => r.to_string(),
        None => {
            // The row's content and how many identical rows came before it in the file.
            let digest: [u8; 32] =
                Sha256::digest(r.iter().map(str::trim).collect::<Vec<_>>().join("\u{1f}").as_bytes()).into();
            let n = seen.entry(digest).or_insert(0);
            *n += 1;
            format!("imp_{}_{}", hex::encode(&digest[..12]), n)
        }
    };
    Ok(Transaction {
        customer: customer.to_string(),
        ordered_at,
        amount_fen,
        quantity,
        store_id,
        channel,
        sku,
        order_ref,
    })
}

/// Import `file` into `store`. Bad rows are reported and skipped; the others go in.
pub async fn import(store: &Store, file: &Path, now: Millis, progress: bool) -> anyhow::Result<Report> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(file)?;
    let header = reader.headers()?.clone();
    for required in ["member_id", "ordered_at", "amount"] {
        if !header.iter().any(|c| c.trim() == required) {
            anyhow::bail!("{}: the header needs member_id, ordered_at and amount columns", file.display());
        }
    }
    let bar = if progress { indicatif::ProgressBar::new_spinner() } else { indicatif::ProgressBar::hidden() };
    let mut report = Report::default();
    let mut seen = HashMap::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut line = 1u64;
    let mut records = reader.records();
    loop {
        let next = records.next();
        let done = next.is_none();
        if let Some(r) = next {
            line += 1;
            report.rows += 1;
            match r {
                Ok(r) => match parse_row(line, &r, &header, &mut seen, now) {
                    Ok(t) => chunk.push(t),
                    Err(e) => report.errors.push(e),
                },
                Err(e) => report.errors.push(RowError { line, field: String::new(), message: e.to_string() }),
            }
        }
        if chunk.len() >= CHUNK || (done && !chunk.is_empty()) {
            let rows = std::mem::take(&mut chunk);
            let (imported, _) = store.write(move |tx, kr| history::import(tx, kr, &rows, now)).await?;
            report.imported.orders += imported.orders;
            report.imported.duplicates += imported.duplicates;
            report.imported.new_members += imported.new_members;
            bar.set_message(format!("{} rows read, {} orders imported", report.rows, report.imported.orders));
            bar.tick();
        }
        if done {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(report)
}
