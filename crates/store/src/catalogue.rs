//! The catalogue: products and their price rows, pushed in bulk by the ERP.

use crate::db::{DbError, Tx};
use crate::{Result, vals};
use ronghe_domain::Millis;
use ronghe_domain::catalogue::PriceRow;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub sku: String,
    pub name: String,
    pub category: String,
    pub price_fen: i64,
    pub channel_prices_fen: BTreeMap<String, i64>,
    /// From when this price applies (default: now).
    pub effective_from: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub category: String,
    /// Oldest first.
    pub prices: Vec<PriceRow>,
}

/// Insert or update products and their price rows; a row with the same `effective_from`
/// replaces the earlier one.
pub fn upsert(tx: &mut dyn Tx, items: &[Item], now: Millis) -> Result<usize> {
    for it in items {
        tx.exec(
            "INSERT INTO products (sku, name, category, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sku) DO UPDATE SET name = excluded.name, category = excluded.category, updated_at = excluded.updated_at",
            vals![it.sku.as_str(), it.name.as_str(), it.category.as_str(), now],
        )?;
        let cp = serde_json::to_string(&it.channel_prices_fen).map_err(|e| DbError::Other(e.to_string()))?;
        tx.exec(
            "INSERT INTO prices (sku, effective_from, price_fen, channel_prices) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sku, effective_from) DO UPDATE SET price_fen = excluded.price_fen, channel_prices = excluded.channel_prices",
            vals![it.sku.as_str(), it.effective_from, it.price_fen, cp],
        )?;
        // For shelf labels and ERP (webhooks): the same price in every channel unless a
        // channel price says otherwise.
        crate::outbox::append(
            tx,
            "price.changed",
            None,
            &serde_json::json!({"sku": it.sku, "price_fen": it.price_fen, "channel_prices_fen": it.channel_prices_fen,
                "effective_from": it.effective_from}),
            now,
        )?;
    }
    Ok(items.len())
}

pub fn get(tx: &mut dyn Tx, sku: &str) -> Result<Option<Product>> {
    let Some(p) = tx.query_one("SELECT sku, name, category FROM products WHERE sku = $1", vals![sku])? else {
        return Ok(None);
    };
    let prices = tx
        .query(
            "SELECT effective_from, price_fen, channel_prices FROM prices WHERE sku = $1 ORDER BY effective_from",
            vals![sku],
        )?
        .iter()
        .map(|r| {
            Ok(PriceRow {
                effective_from: r.i64(0)?,
                price_fen: r.i64(1)?,
                channel_prices_fen: serde_json::from_str(&r.string(2)?).map_err(|e| DbError::Other(e.to_string()))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Product { sku: p.string(0)?, name: p.string(1)?, category: p.string(2)?, prices }))
}
