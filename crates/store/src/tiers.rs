//! Member tiers: reached by what a member paid over the programme's window (rolling, 365 days
//! by default). An order that lifts a member's spend over a tier's minimum upgrades them at
//! once; going down happens only at a periodic review, which is safe to repeat.

use crate::db::Tx;
use crate::{Result, loyalty, vals};
use ronghe_domain::Millis;
use ronghe_domain::loyalty::Program;

/// What the member paid in `(now − window, now]`: orders not cancelled, less their refunds.
pub fn spend(tx: &mut dyn Tx, member_id: &str, program: &Program, now: Millis) -> Result<i64> {
    let from = now - program.tier_window_days * 86_400_000;
    let paid = tx
        .query_one(
            "SELECT CAST(COALESCE(SUM(payable_fen), 0) AS BIGINT) FROM orders
             WHERE member_id = $1 AND status <> 'cancelled' AND placed_at > $2 AND placed_at <= $3",
            vals![member_id, from, now],
        )?
        .map(|r| r.i64(0))
        .transpose()?
        .unwrap_or(0);
    let refunded = tx
        .query_one(
            "SELECT CAST(COALESCE(SUM(r.refund_fen + r.deduction_fen), 0) AS BIGINT) FROM returns r JOIN orders o ON o.id = r.order_id
             WHERE o.member_id = $1 AND o.placed_at > $2 AND o.placed_at <= $3",
            vals![member_id, from, now],
        )?
        .map(|r| r.i64(0))
        .transpose()?
        .unwrap_or(0);
    Ok(paid - refunded)
}

pub fn current(tx: &mut dyn Tx, member_id: &str) -> Result<Option<String>> {
    Ok(tx
        .query_one("SELECT tier FROM members WHERE id = $1", vals![member_id])?
        .map(|r| r.opt_string(0))
        .transpose()?
        .flatten())
}

/// Upgrade at once if the member's spend now reaches a higher tier; never downgrades.
pub fn upgrade(tx: &mut dyn Tx, member_id: &str, now: Millis) -> Result<Option<String>> {
    let (_, program, _) = loyalty::at(tx, now)?;
    if program.tiers.is_empty() {
        return Ok(None);
    }
    let cur = current(tx, member_id)?;
    let spend = spend(tx, member_id, &program, now)?;
    match program.tier_for(spend) {
        Some(t) if program.tier_rank(Some(&t.name)) > program.tier_rank(cur.as_deref()) => {
            tx.exec(
                "UPDATE members SET tier = $2, tier_since = $3 WHERE id = $1",
                vals![member_id, t.name.as_str(), now],
            )?;
            Ok(Some(t.name.clone()))
        }
        _ => Ok(cur),
    }
}

/// The periodic review: every member with a tier gets the tier their spend reaches now (up
/// or down). Returns (reviewed, changed).
pub fn review(tx: &mut dyn Tx, now: Millis) -> Result<(i64, i64)> {
    let (_, program, _) = loyalty::at(tx, now)?;
    let members: Vec<(String, Option<String>)> = tx
        .query("SELECT id, tier FROM members WHERE status = 'active' AND tier IS NOT NULL ORDER BY id", &[])?
        .iter()
        .map(|r| Ok((r.string(0)?, r.opt_string(1)?)))
        .collect::<Result<_>>()?;
    let (mut reviewed, mut changed) = (0, 0);
    for (id, cur) in members {
        reviewed += 1;
        let spend = spend(tx, &id, &program, now)?;
        let target = program.tier_for(spend).map(|t| t.name.clone());
        if target != cur {
            tx.exec("UPDATE members SET tier = $2, tier_since = $3 WHERE id = $1", vals![id.as_str(), target, now])?;
            changed += 1;
        }
    }
    Ok((reviewed, changed))
}
