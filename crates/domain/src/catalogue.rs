//! The catalogue and its price list: each SKU has price rows with the time from which they
//! apply, a base price and optional channel prices. Orders are priced from it, so a till
//! cannot invent a price or a category.

use crate::Millis;
use crate::error::{DomainError, Validator};
use std::collections::BTreeMap;

/// One price row of a SKU, in force from `effective_from` until the next row's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRow {
    pub effective_from: Millis,
    pub price_fen: i64,
    /// Explicit, published channel prices (e.g. a mini-program price); others pay `price_fen`.
    pub channel_prices_fen: BTreeMap<String, i64>,
}

/// The price of a SKU in `channel` at `at`: the latest row in force, its channel price if
/// it has one for that channel, else its base price. `None` before the first row.
pub fn price_at(rows: &[PriceRow], channel: &str, at: Millis) -> Option<i64> {
    let row = rows.iter().filter(|r| r.effective_from <= at).max_by_key(|r| r.effective_from)?;
    Some(row.channel_prices_fen.get(channel).copied().unwrap_or(row.price_fen))
}

/// A SKU: 1–64 of letters, digits, `-`, `_`, `.`.
pub fn check_sku(sku: &str) -> Result<(), DomainError> {
    let ok = (1..=64).contains(&sku.len()) && sku.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok { Ok(()) } else { Err(DomainError::field("sku", "1–64 of A-Z, a-z, 0-9, '-', '_', '.'")) }
}

/// A channel name: lower-case snake_case, 1–32 characters (pos, mini_program, douyin…).
pub fn check_channel(channel: &str) -> bool {
    (1..=32).contains(&channel.len())
        && channel.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Validate one catalogue item as pushed by an ERP.
pub fn check_item(
    v: &mut Validator,
    prefix: &str,
    sku: &str,
    name: &str,
    category: &str,
    price_fen: i64,
    channel_prices: &BTreeMap<String, i64>,
) {
    if let Err(e) = check_sku(sku) {
        v.check::<()>(prefix, Err(e));
    }
    if name.trim().is_empty() || name.chars().count() > 200 {
        v.push(format!("{prefix}.name"), "1 to 200 characters");
    }
    if category.trim().is_empty() || category.chars().count() > 64 {
        v.push(format!("{prefix}.category"), "1 to 64 characters");
    }
    if !(0..=10_000_000_000).contains(&price_fen) {
        v.push(format!("{prefix}.price_fen"), "0 to 100,000,000.00 yuan, in fen");
    }
    for (ch, p) in channel_prices {
        if !check_channel(ch) {
            v.push(format!("{prefix}.channel_prices_fen.{ch}"), "channel names are snake_case");
        }
        if !(0..=10_000_000_000).contains(p) {
            v.push(format!("{prefix}.channel_prices_fen.{ch}"), "0 to 100,000,000.00 yuan, in fen");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_row_in_force_and_its_channel_price_apply() {
        let rows = vec![
            PriceRow { effective_from: 100, price_fen: 1000, channel_prices_fen: BTreeMap::new() },
            PriceRow {
                effective_from: 200,
                price_fen: 900,
                channel_prices_fen: BTreeMap::from([("mini_program".into(), 850)]),
            },
        ];
        assert_eq!(price_at(&rows, "pos", 50), None);
        assert_eq!(price_at(&rows, "pos", 150), Some(1000));
        assert_eq!(price_at(&rows, "mini_program", 150), Some(1000));
        assert_eq!(price_at(&rows, "pos", 200), Some(900));
        assert_eq!(price_at(&rows, "mini_program", 250), Some(850));
    }
}
