//! Coupon templates and coupons: issuing within the template's limits, reading a code for
//! the till's scan, redeeming inside an order (exactly once, even under concurrent tills) and
//! restoring on cancellation while still valid.

use crate::db::{DbError, Tx};
use crate::{Result, members, vals};
use rand::RngCore;
use ronghe_domain::coupon::{Held, Template};
use ronghe_domain::pricing::CouponDiscount;
use ronghe_domain::{Code, DomainError, FieldError, Millis};

#[derive(Debug, Clone)]
pub struct TemplateRecord {
    pub id: String,
    pub template: Template,
    pub issued: i64,
    pub spent_fen: i64,
    pub created_at: Millis,
}

#[derive(Debug, Clone)]
pub struct CouponRecord {
    pub code: String,
    pub template_id: String,
    pub member_id: Option<String>,
    pub status: String,
    pub valid_from: Millis,
    pub valid_to: Millis,
    pub issued_at: Millis,
    pub order_id: Option<String>,
    pub held: Held,
}

const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// 16 Crockford base-32 characters: 80 random bits, easy to read out at a till.
fn new_code() -> String {
    let mut b = [0u8; 10];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let mut bits: u128 = 0;
    for x in b {
        bits = (bits << 8) | u128::from(x);
    }
    (0..16).map(|i| CROCKFORD[((bits >> (75 - i * 5)) & 31) as usize] as char).collect()
}

pub fn create_template(tx: &mut dyn Tx, t: &Template, now: Millis) -> Result<String> {
    let mut b = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut b);
    let id = format!("ct_{}", hex::encode(b));
    let rules = serde_json::to_string(t).map_err(|e| DbError::Other(e.to_string()))?;
    tx.exec(
        "INSERT INTO coupon_templates (id, rules, budget_fen, created_at) VALUES ($1, $2, $3, $4)",
        vals![id.as_str(), rules, t.budget_fen, now],
    )?;
    Ok(id)
}

pub fn template(tx: &mut dyn Tx, id: &str) -> Result<Option<TemplateRecord>> {
    let sql = format!(
        "SELECT id, rules, issued, spent_fen, created_at FROM coupon_templates WHERE id = $1{}",
        tx.for_update()
    );
    let Some(r) = tx.query_one(&sql, vals![id])? else { return Ok(None) };
    Ok(Some(TemplateRecord {
        id: r.string(0)?,
        template: serde_json::from_str(&r.string(1)?).map_err(|e| DbError::Other(e.to_string()))?,
        issued: r.i64(2)?,
        spent_fen: r.i64(3)?,
        created_at: r.i64(4)?,
    }))
}

/// Issue one coupon of `template_id`, to a member or (None) as an unassigned claim code.
/// Refused with `conflict` when the template's total or per-member limit is reached.
pub fn issue(tx: &mut dyn Tx, template_id: &str, member_id: Option<&str>, now: Millis) -> Result<CouponRecord> {
    let t = template(tx, template_id)?.ok_or_else(|| DomainError::not_found("coupon template"))?;
    let member = match member_id {
        Some(m) => Some(members::resolve(tx, m)?),
        None => None,
    };
    if t.template.total_limit.is_some_and(|l| t.issued >= l) {
        return Err(DomainError::new(Code::Conflict, "the template's total issue limit is reached").into());
    }
    if let (Some(limit), Some(m)) = (t.template.per_member_limit, &member) {
        let n = tx
            .query_one(
                "SELECT count(*) FROM coupons WHERE member_id = $1 AND template_id = $2",
                vals![m.as_str(), template_id],
            )?
            .map(|r| r.i64(0))
            .transpose()?
            .unwrap_or(0);
        if n >= limit {
            return Err(DomainError::new(
                Code::Conflict,
                "the member already holds as many of these coupons as allowed",
            )
            .into());
        }
    }
    let (from, to) = t.template.validity.window(now);
    let code = new_code();
    tx.exec(
        "INSERT INTO coupons (code, template_id, member_id, status, valid_from, valid_to, issued_at) VALUES ($1, $2, $3, 'issued', $4, $5, $6)",
        vals![code.as_str(), template_id, member.clone(), from, to, now],
    )?;
    tx.exec("UPDATE coupon_templates SET issued = issued + 1 WHERE id = $1", vals![template_id])?;
    get(tx, &code)?.ok_or_else(|| DbError::Other("coupon vanished".into()).into())
}

pub fn get(tx: &mut dyn Tx, code: &str) -> Result<Option<CouponRecord>> {
    // Lock the coupon only: locking its template too would serialize every order using it.
    let lock = if tx.for_update().is_empty() { "" } else { " FOR UPDATE OF c" };
    let sql = format!(
        "SELECT c.code, c.template_id, c.member_id, c.status, c.valid_from, c.valid_to, c.issued_at, c.order_id, t.rules, t.spent_fen
         FROM coupons c JOIN coupon_templates t ON t.id = c.template_id WHERE c.code = $1{lock}"
    );
    let Some(r) = tx.query_one(&sql, vals![code.trim().to_ascii_uppercase()])? else { return Ok(None) };
    let template: Template = serde_json::from_str(&r.string(8)?).map_err(|e| DbError::Other(e.to_string()))?;
    let member_id = r.opt_string(2)?.map(|m| members::resolve(tx, &m).unwrap_or(m));
    let status = r.string(3)?;
    let held = Held {
        code: r.string(0)?,
        template,
        member_id: member_id.clone(),
        redeemed: status != "issued",
        valid_from: r.i64(4)?,
        valid_to: r.i64(5)?,
        template_spent_fen: r.i64(9)?,
    };
    Ok(Some(CouponRecord {
        code: r.string(0)?,
        template_id: r.string(1)?,
        member_id,
        status,
        valid_from: r.i64(4)?,
        valid_to: r.i64(5)?,
        issued_at: r.i64(6)?,
        order_id: r.opt_string(7)?,
        held,
    }))
}

/// The coupons named in an order, or `coupon_not_applicable` naming the unknown ones.
pub fn for_order(tx: &mut dyn Tx, codes: &[String]) -> Result<Vec<Held>> {
    let mut out = Vec::with_capacity(codes.len());
    let mut unknown = Vec::new();
    for (i, c) in codes.iter().enumerate() {
        if codes[..i].iter().any(|x| x.eq_ignore_ascii_case(c)) {
            return Err(DomainError::field(format!("coupon_codes[{i}]"), "the same code twice").into());
        }
        match get(tx, c)? {
            Some(r) => out.push(r.held),
            None => unknown.push(FieldError {
                field: format!("coupon_codes[{i}]"),
                code: "unknown_coupon",
                message: "no such coupon".into(),
            }),
        }
    }
    if !unknown.is_empty() {
        return Err(
            DomainError { code: Code::CouponNotApplicable, message: "unknown coupon".into(), errors: unknown }.into()
        );
    }
    Ok(out)
}

/// Mark the order's coupons redeemed. The conditional update makes a coupon redeemable once
/// even if two tills race for it.
pub fn redeem(
    tx: &mut dyn Tx,
    order_id: &str,
    member_id: Option<&str>,
    held: &[Held],
    discounts: &[CouponDiscount],
) -> Result<()> {
    let budgeted: Vec<bool> =
        discounts.iter().map(|d| held.iter().any(|h| h.code == d.code && h.template.budget_fen.is_some())).collect();
    for (i, d) in discounts.iter().enumerate() {
        let n = tx.exec(
            "UPDATE coupons SET status = 'redeemed', order_id = $2, member_id = COALESCE(member_id, $3), discount_fen = $4
             WHERE code = $1 AND status = 'issued'",
            vals![d.code.as_str(), order_id, member_id, d.discount_fen],
        )?;
        if n != 1 {
            return Err(DomainError {
                code: Code::CouponNotApplicable,
                message: format!("coupon {} was redeemed meanwhile", d.code),
                errors: vec![FieldError {
                    field: format!("coupon_codes[{i}]"),
                    code: "already_redeemed",
                    message: "already redeemed".into(),
                }],
            }
            .into());
        }
        if budgeted[i] {
            // Only a template with a budget keeps a running total: that row is a hot spot that
            // serializes its redemptions, which a budget needs and an unbudgeted template does not.
            let n = tx.exec(
                "UPDATE coupon_templates SET spent_fen = spent_fen + $2
                 WHERE id = (SELECT template_id FROM coupons WHERE code = $1) AND spent_fen + $2 <= budget_fen",
                vals![d.code.as_str(), d.discount_fen],
            )?;
            if n != 1 {
                return Err(DomainError {
                    code: Code::CouponNotApplicable,
                    message: format!("coupon {}: the template's budget is spent", d.code),
                    errors: vec![FieldError {
                        field: format!("coupon_codes[{i}]"),
                        code: "budget_exhausted",
                        message: "budget exhausted".into(),
                    }],
                }
                .into());
            }
        }
        let per_line = serde_json::to_string(&d.per_line_fen).map_err(|e| DbError::Other(e.to_string()))?;
        tx.exec(
            "INSERT INTO order_coupons (order_id, code, discount_fen, per_line) VALUES ($1, $2, $3, $4)",
            vals![order_id, d.code.as_str(), d.discount_fen, per_line],
        )?;
    }
    Ok(())
}

/// The coupons an order redeemed, with their discount per line.
pub fn of_order(tx: &mut dyn Tx, order_id: &str) -> Result<Vec<CouponDiscount>> {
    tx.query(
        "SELECT code, discount_fen, per_line FROM order_coupons WHERE order_id = $1 ORDER BY code",
        vals![order_id],
    )?
    .iter()
    .map(|r| {
        Ok(CouponDiscount {
            code: r.string(0)?,
            discount_fen: r.i64(1)?,
            per_line_fen: serde_json::from_str(&r.string(2)?).map_err(|e| DbError::Other(e.to_string()))?,
        })
    })
    .collect()
}

/// Give back an order's coupons that are still valid (on cancellation or a full return);
/// returns the codes restored.
pub fn restore(tx: &mut dyn Tx, order_id: &str, now: Millis) -> Result<Vec<String>> {
    let mut restored = Vec::new();
    for d in of_order(tx, order_id)? {
        let n = tx.exec(
            "UPDATE coupons SET status = 'issued', order_id = NULL, discount_fen = NULL
             WHERE code = $1 AND order_id = $2 AND valid_to > $3",
            vals![d.code.as_str(), order_id, now],
        )?;
        if n == 1 {
            // Only budgeted templates keep a running total (see `redeem`).
            tx.exec(
                "UPDATE coupon_templates SET spent_fen = spent_fen - $2
                 WHERE id = (SELECT template_id FROM coupons WHERE code = $1) AND budget_fen IS NOT NULL",
                vals![d.code.as_str(), d.discount_fen],
            )?;
            restored.push(d.code);
        }
    }
    Ok(restored)
}

/// Carry over a coupon a customer already holds from a legacy system, keeping its code.
pub fn import(tx: &mut dyn Tx, template_id: &str, code: &str, member_id: &str, now: Millis) -> Result<()> {
    let t = template(tx, template_id)?.ok_or_else(|| DomainError::field("template_id", "no such coupon template"))?;
    let code = code.trim().to_ascii_uppercase();
    if code.len() < 6 || code.len() > 32 || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(DomainError::field("code", "6 to 32 letters, digits or '-'").into());
    }
    let (from, to) = t.template.validity.window(now);
    tx.exec(
        "INSERT INTO coupons (code, template_id, member_id, status, valid_from, valid_to, issued_at) VALUES ($1, $2, $3, 'issued', $4, $5, $6)",
        vals![code.as_str(), template_id, member_id, from, to, now],
    )?;
    tx.exec("UPDATE coupon_templates SET issued = issued + 1 WHERE id = $1", vals![template_id])?;
    Ok(())
}
