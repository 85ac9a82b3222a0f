//! `ronghe import members`: a legacy CRM's members, opening balances, tiers and open coupons
//! from CSV, with a progress bar and a validation report; safe to run twice.

use ronghe_domain::Millis;
use ronghe_store::Store;
use ronghe_store::legacy::{self, LegacyMember};
use serde_json::json;
use std::path::Path;

/// One row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line of the file (the header is line 1).
    pub line: u64,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub rows: u64,
    pub created: u64,
    pub existing: u64,
    pub points_credited: u64,
    pub coupons_added: u64,
    pub errors: Vec<RowError>,
}

fn parse_row(line: u64, r: &csv::StringRecord, h: &csv::StringRecord) -> Result<LegacyMember, RowError> {
    let get = |name: &str| {
        h.iter().position(|c| c.trim() == name).and_then(|i| r.get(i)).map(str::trim).filter(|v| !v.is_empty())
    };
    let err = |field: &str, message: &str| RowError { line, field: field.into(), message: message.into() };
    let external_id = get("external_id").ok_or_else(|| err("external_id", "required"))?.to_string();
    let opening_points = match get("points") {
        None => 0,
        Some(p) => p.parse::<i64>().map_err(|_| err("points", "a whole number of points"))?,
    };
    let mut coupons = Vec::new();
    for item in get("coupons").unwrap_or("").split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (t, c) = item.split_once(':').ok_or_else(|| err("coupons", "template_id:CODE, separated by ';'"))?;
        coupons.push((t.trim().to_string(), c.trim().to_string()));
    }
    Ok(LegacyMember {
        external_id,
        phone: get("phone").map(str::to_string),
        email: get("email").map(str::to_string),
        name: get("name").map(str::to_string),
        city: get("city").map(str::to_string),
        opening_points,
        tier: get("tier").map(str::to_string),
        coupons,
    })
}

/// Import `file` into `store`, 500 rows per transaction, each row on its own (a bad row is
/// reported and skipped, the others go in).
pub async fn members(store: &Store, file: &Path, now: Millis, progress: bool) -> anyhow::Result<Report> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(file)?;
    let header = reader.headers()?.clone();
    if !header.iter().any(|c| c.trim() == "external_id") {
        anyhow::bail!("{}: the header needs an external_id column", file.display());
    }
    let records: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    let bar =
        if progress { indicatif::ProgressBar::new(records.len() as u64) } else { indicatif::ProgressBar::hidden() };
    let mut report = Report { rows: records.len() as u64, ..Default::default() };
    for (c, chunk) in records.chunks(500).enumerate() {
        let mut rows = Vec::new();
        for (i, r) in chunk.iter().enumerate() {
            let line = (c * 500 + i) as u64 + 2;
            match parse_row(line, r, &header) {
                Ok(m) => rows.push((line, m)),
                Err(e) => report.errors.push(e),
            }
        }
        let outcomes = store
            .write(move |tx, kr| {
                let mut out = Vec::with_capacity(rows.len());
                for (line, m) in &rows {
                    // A savepoint per row: a refused row leaves no trace and stops nothing.
                    tx.exec("SAVEPOINT import_row", &[])?;
                    match legacy::import_member(tx, kr, m, now) {
                        Ok(r) => {
                            tx.exec("RELEASE SAVEPOINT import_row", &[])?;
                            out.push((*line, Ok(r)));
                        }
                        Err(ronghe_store::Error::Domain(e)) => {
                            tx.exec("ROLLBACK TO SAVEPOINT import_row", &[])?;
                            tx.exec("RELEASE SAVEPOINT import_row", &[])?;
                            out.push((*line, Err(e)));
                        }
                        Err(other) => return Err(other),
                    }
                }
                Ok(out)
            })
            .await?;
        for (line, o) in outcomes {
            match o {
                Ok(r) => {
                    if r.created {
                        report.created += 1
                    } else {
                        report.existing += 1
                    }
                    report.points_credited += r.points_credited as u64;
                    report.coupons_added += r.coupons_added as u64;
                }
                Err(e) => {
                    let field = e.errors.first().map_or(String::new(), |f| f.field.clone());
                    let message = e.errors.first().map_or(e.message.clone(), |f| f.message.clone());
                    report.errors.push(RowError { line, field, message });
                }
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    report.errors.sort_by_key(|e| e.line);
    Ok(report)
}

impl Report {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "rows": self.rows, "created": self.created, "existing": self.existing,
            "points_credited": self.points_credited, "coupons_added": self.coupons_added,
            "errors": self.errors.iter().map(|e| json!({"line": e.line, "field": e.field, "message": e.message})).collect::<Vec<_>>(),
        })
    }
}
