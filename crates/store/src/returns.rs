//! Returns anywhere: any order, from any channel, returned at any store (or by post), fully
//! or in part, in one transaction with its refund and points effects.

use crate::db::{DbError, Tx};
use crate::{Result, coupons, loyalty, members, orders, outbox, points, vals};
use rand::RngCore;
use ronghe_domain::money::allocate;
use ronghe_domain::returns::{SoldLine, line_return, settle};
use ronghe_domain::{Code, DomainError, Millis};

#[derive(Debug, Clone)]
pub struct ReturnLineIn {
    /// The line's `line_id` in the order…
    pub line_no: Option<i64>,
    /// …or its SKU, when that names exactly one line.
    pub sku: Option<String>,
    pub qty: i64,
    /// The goods came back damaged: received and written off, not put back on sale.
    pub damaged: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnLine {
    pub line_no: i64,
    pub qty: i64,
    pub refund_fen: i64,
    pub points_taken: i64,
    pub points_given: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Return {
    pub id: String,
    pub order_id: String,
    pub store_id: Option<String>,
    pub location_id: Option<String>,
    /// What the shopper gets back, after any deduction for points already spent.
    pub refund_fen: i64,
    pub deduction_fen: i64,
    pub points_taken: i64,
    pub points_given: i64,
    pub shortfall_points: i64,
    pub coupons_restored: Vec<String>,
    pub lines: Vec<ReturnLine>,
    pub order_status: String,
}

/// Record a return of `lines` of order `order_id`.
pub fn create(
    tx: &mut dyn Tx,
    order_id: &str,
    lines: &[ReturnLineIn],
    store_id: Option<&str>,
    location_id: Option<&str>,
    now: Millis,
) -> Result<Return> {
    let sql = format!(
        "SELECT status, member_id, program_version, points_redeemed FROM orders WHERE id = $1{}",
        tx.for_update()
    );
    let o = tx.query_one(&sql, vals![order_id])?.ok_or_else(|| DomainError::not_found("order"))?;
    let status = o.string(0)?;
    if status == "cancelled" || status == "awaiting_payment" {
        return Err(DomainError::new(Code::OrderNotCancellable, "only a paid order can be returned").into());
    }
    let order = orders::get(tx, order_id)?.ok_or_else(|| DomainError::not_found("order"))?;
    let returned: Vec<i64> = tx
        .query("SELECT line_no, returned_qty FROM order_lines WHERE order_id = $1 ORDER BY line_no", vals![order_id])?
        .iter()
        .map(|r| r.i64(1))
        .collect::<Result<_, _>>()?;
    // Points redeemed per line: the order's points, shared as their value was.
    let weights: Vec<i64> = order.lines.iter().map(|l| l.points_value_fen).collect();
    let redeemed = allocate(order.points_redeemed, &weights);

    let mut v = ronghe_domain::error::Validator::new();
    let mut wanted = vec![0i64; order.lines.len()];
    let mut damaged = vec![0i64; order.lines.len()];
    for (i, l) in lines.iter().enumerate() {
        let line_no = match (l.line_no, &l.sku) {
            (Some(n), None) => n,
            (None, Some(sku)) => {
                let matching: Vec<i64> = order.lines.iter().filter(|x| x.sku == *sku).map(|x| x.line_no).collect();
                if matching.len() != 1 {
                    v.push(format!("lines[{i}].sku"), "must name exactly one line of the order; give line_id");
                    continue;
                }
                matching[0]
            }
            _ => {
                v.push(format!("lines[{i}].line_id"), "give line_id or sku");
                continue;
            }
        };
        let idx = (line_no - 1) as usize;
        if line_no < 1 || idx >= order.lines.len() {
            v.push(format!("lines[{i}].line_id"), "no such line in the order");
        } else if l.qty < 1 {
            v.push(format!("lines[{i}].qty"), "at least 1");
        } else {
            wanted[idx] += l.qty;
            if l.damaged {
                damaged[idx] += l.qty;
            }
            let left = order.lines[idx].qty - returned[idx];
            if wanted[idx] > left {
                v.push(format!("lines[{i}].qty"), format!("only {left} left to return on this line"));
            }
        }
    }
    v.finish()?;

    let mut out_lines = Vec::new();
    let (mut refund, mut take, mut give) = (0i64, 0i64, 0i64);
    for (idx, qty) in wanted.iter().enumerate().filter(|(_, q)| **q > 0) {
        let l = &order.lines[idx];
        let sold = SoldLine {
            qty: l.qty,
            returned_qty: returned[idx],
            paid_fen: l.paid_fen,
            points_earned: l.points_earned,
            points_redeemed: redeemed[idx],
        };
        let r = line_return(&sold, *qty);
        refund += r.refund_fen;
        take += r.points_taken;
        give += r.points_given;
        out_lines.push(ReturnLine {
            line_no: l.line_no,
            qty: *qty,
            refund_fen: r.refund_fen,
            points_taken: r.points_taken,
            points_given: r.points_given,
        });
    }

    let mut id_bytes = [0u8; 5];
    rand::thread_rng().fill_bytes(&mut id_bytes);
    let id = format!("r_{:012x}{}", now.clamp(0, 0xffff_ffff_ffff), hex::encode(id_bytes));
    let (mut taken, mut shortfall, mut deduction) = (0, 0, 0);
    if let Some(m) = o.opt_string(1)? {
        let m = members::resolve(tx, &m)?;
        points::append(tx, &m, give, "return_give_back", "return", &id, None, now)?;
        // Points earned but still pending (inside the return window) are taken from there.
        let from_pending = points::take_pending(tx, order_id, take)?;
        let (_, program, _) = loyalty::at(tx, order.placed_at)?;
        let s = settle(points::balance(tx, &m)?, take - from_pending, refund, program.redeem.fen_per_point);
        points::append(tx, &m, -s.points_taken, "return_take_back", "return", &id, None, now)?;
        (taken, shortfall, deduction) = (s.points_taken + from_pending, s.shortfall_points, s.deduction_fen);
    }
    for l in &out_lines {
        tx.exec(
            "UPDATE order_lines SET returned_qty = returned_qty + $3 WHERE order_id = $1 AND line_no = $2",
            vals![order_id, l.line_no, l.qty],
        )?;
        tx.exec(
            "INSERT INTO return_lines (return_id, line_no, qty, refund_fen, points_taken, points_given) VALUES ($1, $2, $3, $4, $5, $6)",
            vals![id.as_str(), l.line_no, l.qty, l.refund_fen, l.points_taken, l.points_given],
        )?;
    }
    // The goods go back on the shelf where they were received (a location that counts stock).
    if let Some(at) = location_id.or(store_id) {
        for (idx, qty) in wanted.iter().enumerate().filter(|(_, q)| **q > 0) {
            let sku = &order.lines[idx].sku;
            let sellable = qty - damaged[idx];
            if sellable > 0 {
                crate::stock::restock(tx, at, sku, sellable, false, &id, now)?;
            }
            if damaged[idx] > 0 {
                crate::stock::restock(tx, at, sku, damaged[idx], true, &id, now)?;
            }
        }
    }
    let fully = order.lines.iter().enumerate().all(|(i, l)| returned[i] + wanted[i] == l.qty);
    let mut restored = Vec::new();
    let mut order_status = status.clone();
    if fully {
        restored = coupons::restore(tx, order_id, now)?;
        tx.exec("UPDATE orders SET status = 'returned', updated_at = $2 WHERE id = $1", vals![order_id, now])?;
        order_status = "returned".into();
    }
    tx.exec(
        "INSERT INTO returns (id, order_id, store_id, location_id, refund_fen, deduction_fen, points_taken, points_given,
                              shortfall_points, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        vals![id.as_str(), order_id, store_id, location_id, refund - deduction, deduction, taken, give, shortfall, now],
    )?;
    outbox::append(tx, "order.returned", None, &serde_json::json!({"order_id": order_id, "return_id": id}), now)?;
    if refund < 0 {
        return Err(DbError::Other("negative refund".into()).into());
    }
    Ok(Return {
        id,
        order_id: order_id.to_string(),
        store_id: store_id.map(str::to_string),
        location_id: location_id.map(str::to_string),
        refund_fen: refund - deduction,
        deduction_fen: deduction,
        points_taken: taken,
        points_given: give,
        shortfall_points: shortfall,
        coupons_restored: restored,
        lines: out_lines,
        order_status,
    })
}
