//! Imported purchase history (`ronghe import transactions`): years of POS/ERP orders loaded as
//! completed orders that earn no points and move no stock. Each row's key makes a second
//! import of the same file change nothing.

use crate::db::Tx;
use crate::keyring::Keyring;
use crate::members::{self, Registration, Source};
use crate::{Result, vals};
use ronghe_domain::Millis;
use ronghe_domain::identity::{Identity, IdentityKind};

/// One checked CSV row.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// The retailer's customer number (an `external_id` identity).
    pub customer: String,
    pub ordered_at: Millis,
    pub amount_fen: i64,
    pub quantity: i64,
    pub store_id: Option<String>,
    pub channel: String,
    pub sku: Option<String>,
    /// `order_ref`, or a hash of the row and its occurrence number.
    pub order_ref: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    pub orders: u64,
    pub duplicates: u64,
    pub new_members: u64,
}

/// Load a chunk of rows in one transaction; the ids of the members it touched are returned
/// so that the audience index can refresh them.
pub fn import(tx: &mut dyn Tx, kr: &Keyring, rows: &[Transaction], now: Millis) -> Result<(Imported, Vec<String>)> {
    let mut out = Imported::default();
    let mut touched = Vec::new();
    for t in rows {
        let exists = tx.query_one(
            "SELECT 1 FROM orders WHERE channel = $1 AND COALESCE(store_id, '') = $2 AND order_ref = $3",
            vals![t.channel.as_str(), t.store_id.clone().unwrap_or_default(), t.order_ref.as_str()],
        )?;
        if exists.is_some() {
            out.duplicates += 1;
            continue;
        }
        let identity = Identity::parse(IdentityKind::ExternalId, &t.customer, None)?;
        let member = match members::owner(tx, kr, &identity)? {
            Some(m) => m,
            None => {
                let reg = Registration {
                    identities: vec![(identity, true)],
                    source: Source { channel: Some("import".into()), ..Source::default() },
                    ..Registration::default()
                };
                out.new_members += 1;
                members::register(tx, kr, &reg, "import", now)?.id
            }
        };
        let id = crate::orders::new_order_id(t.ordered_at);
        tx.exec(
            "INSERT INTO orders (id, channel, store_id, order_ref, member_id, status, placed_at, created_at, updated_at,
                                 program_version, subtotal_fen, discount_fen, points_redeemed, points_value_fen, payable_fen,
                                 points_earned)
             VALUES ($1, $2, $3, $4, $5, 'completed', $6, $7, $7, 0, $8, 0, 0, 0, $8, 0)",
            vals![id.as_str(), t.channel.as_str(), t.store_id.clone(), t.order_ref.as_str(), member.as_str(), t.ordered_at, now, t.amount_fen],
        )?;
        if let Some(sku) = &t.sku {
            let product = crate::catalogue::get(tx, sku)?;
            let (name, category) = product.map_or((sku.clone(), "unknown".to_string()), |p| (p.name, p.category));
            let qty = t.quantity.max(1);
            tx.exec(
                "INSERT INTO order_lines (order_id, line_no, sku, name, category, qty, unit_price_fen, catalogue_price_fen,
                                          override_reason, subtotal_fen, discount_fen, points_value_fen, paid_fen, points_earned)
                 VALUES ($1, 1, $2, $3, $4, $5, $6, $6, 'imported', $7, 0, 0, $7, 0)",
                vals![id.as_str(), sku.as_str(), name, category, qty, t.amount_fen / qty, t.amount_fen],
            )?;
        }
        let event = crate::events::OrderEvent {
            order_id: &id,
            member_id: &member,
            channel: &t.channel,
            store_id: t.store_id.as_deref(),
            payable_fen: t.amount_fen,
            placed_at: t.ordered_at,
        };
        crate::events::record_order(tx, event, now)?;
        out.orders += 1;
        touched.push(member);
    }
    touched.sort();
    touched.dedup();
    Ok((out, touched))
}

/// The bulk path for large synthetic histories (benchmarks): completed till orders of known
/// member ids, nothing else (no lines, no events, no member check).
pub fn bulk_orders(tx: &mut dyn Tx, rows: &[(String, Millis, i64)]) -> Result<()> {
    for (member, at, fen) in rows {
        let id = crate::orders::new_order_id(*at);
        tx.exec(
            "INSERT INTO orders (id, channel, store_id, order_ref, member_id, status, placed_at, created_at, updated_at,
                                 program_version, subtotal_fen, discount_fen, points_redeemed, points_value_fen, payable_fen,
                                 points_earned)
             VALUES ($1, 'pos', NULL, $1, $2, 'completed', $3, $3, $3, 0, $4, 0, 0, 0, $4, 0)",
            vals![id.as_str(), member.as_str(), *at, *fen],
        )?;
    }
    Ok(())
}
