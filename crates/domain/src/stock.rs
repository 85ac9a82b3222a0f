//! One pool of stock: locations (stores, regional and central warehouses), available to
//! promise, stale-safe stock updates from ERP/WMS, and the routing of an online order to the
//! locations that fill it — pick-up at a chosen store, delivery from the nearest store whose
//! radius covers the address, else a regional warehouse, else the central one, split only
//! when no single location can fill it and the order allows it.

use crate::error::{DomainError, Validator};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationKind {
    Store,
    RegionalWarehouse,
    CentralWarehouse,
}

impl LocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LocationKind::Store => "store",
            LocationKind::RegionalWarehouse => "regional_warehouse",
            LocationKind::CentralWarehouse => "central_warehouse",
        }
    }

    pub fn parse(s: &str) -> Option<LocationKind> {
        [LocationKind::Store, LocationKind::RegionalWarehouse, LocationKind::CentralWarehouse]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A place that holds stock. Coordinates are WGS-84 degrees (what map SDKs give); distances
/// are great-circle kilometres.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub id: String,
    pub name: String,
    pub kind: LocationKind,
    pub lat: f64,
    pub lng: f64,
    /// Shoppers may collect orders here (门店自提).
    pub pickup: bool,
    /// The location ships online orders (a store acting as a forward warehouse).
    pub ship_from_store: bool,
    /// How far it delivers, in km (0: it does not deliver).
    pub delivery_radius_km: f64,
    /// Units of every SKU held back from online sales (the shelf must not be emptied online).
    pub safety_stock: i64,
    /// Opening hours as given, e.g. `09:00-22:00`.
    pub opening_hours: Option<String>,
}

impl Location {
    pub fn validate(&self) -> Result<(), DomainError> {
        let mut v = Validator::new();
        if self.id.is_empty()
            || self.id.len() > 64
            || !self.id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            v.push("id", "1 to 64 letters, digits, - _ or .");
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            v.push("name", "1 to 200 characters");
        }
        if !(-90.0..=90.0).contains(&self.lat) {
            v.push("lat", "a latitude between -90 and 90");
        }
        if !(-180.0..=180.0).contains(&self.lng) {
            v.push("lng", "a longitude between -180 and 180");
        }
        if !(0.0..=1000.0).contains(&self.delivery_radius_km) {
            v.push("delivery_radius_km", "0 to 1000");
        }
        if !(0..=1_000_000).contains(&self.safety_stock) {
            v.push("safety_stock", "0 to 1,000,000 units");
        }
        v.finish()
    }

    /// Whether it delivers to a point `km` away.
    pub fn delivers_to(&self, km: f64) -> bool {
        self.ship_from_store && self.delivery_radius_km > 0.0 && km <= self.delivery_radius_km
    }
}

/// Great-circle distance in km (haversine, mean Earth radius).
pub fn distance_km(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lng2 - lng1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0088 * a.sqrt().asin()
}

/// Available to promise for online sales: on hand − reserved − safety stock, never below 0.
pub fn available_to_promise(on_hand: i64, reserved: i64, safety_stock: i64) -> i64 {
    (on_hand - reserved - safety_stock).max(0)
}

/// One item of an ERP/WMS push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The counted quantity on hand.
    Snapshot(i64),
    /// A change of on hand (receipts positive, shrinkage negative).
    Delta(i64),
}

/// Why an update was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its sequence number is not above the last one applied for this source, location and SKU.
    Stale { last_seq: i64 },
}

/// Apply an update to `on_hand`: the new quantity, or the refusal. `last_seq` is the last
/// sequence number applied for the same (source, location, SKU); an update without `seq`
/// always applies.
pub fn apply(on_hand: i64, last_seq: Option<i64>, change: Change, seq: Option<i64>) -> Result<i64, Refused> {
    if let (Some(s), Some(last)) = (seq, last_seq)
        && s <= last
    {
        return Err(Refused::Stale { last_seq: last });
    }
    Ok(match change {
        Change::Snapshot(n) => n,
        Change::Delta(d) => on_hand + d,
    })
}

/// How an online order wants its goods.
#[derive(Debug, Clone, PartialEq)]
pub enum Fulfillment {
    /// Collected at this store.
    Pickup { store_id: String },
    /// Delivered to a point.
    Delivery { lat: f64, lng: f64, allow_split: bool },
}

/// A location considered for an order, with what it can promise per SKU.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub location: &'a Location,
    pub atp: BTreeMap<String, i64>,
}

impl Candidate<'_> {
    fn fills(&self, wanted: &BTreeMap<String, i64>) -> bool {
        wanted.iter().all(|(sku, qty)| self.atp.get(sku).copied().unwrap_or(0) >= *qty)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allocation {
    pub location_id: String,
    pub sku: String,
    pub qty: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    pub allocations: Vec<Allocation>,
    /// Why these locations, for people: `pickup at S001`, `nearest store within its delivery
    /// radius (S002, 1.2 km)`, `regional warehouse`, `central warehouse`, `split across 2 locations`.
    pub reason: String,
}

/// Why an order could not be routed; `nearest` lists up to five locations that have every
/// line, nearest first (for a pick-up: the stores that do pick-up).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutOfStock {
    pub nearest: Vec<(String, f64)>,
}

/// Route an order's `lines` (SKU → quantity) among `candidates`. Pure: the store prefetches
/// the candidates (and locks their stock rows) and writes the reservations this returns.
pub fn route(f: &Fulfillment, lines: &BTreeMap<String, i64>, candidates: &[Candidate]) -> Result<Route, OutOfStock> {
    let whole = |c: &Candidate| -> Vec<Allocation> {
        lines
            .iter()
            .map(|(sku, qty)| Allocation { location_id: c.location.id.clone(), sku: sku.clone(), qty: *qty })
            .collect()
    };
    match f {
        Fulfillment::Pickup { store_id } => {
            let at = candidates.iter().find(|c| &c.location.id == store_id);
            if let Some(c) = at.filter(|c| c.location.pickup && c.fills(lines)) {
                return Ok(Route { allocations: whole(c), reason: format!("pickup at {store_id}") });
            }
            let (lat, lng) = at.map_or((0.0, 0.0), |c| (c.location.lat, c.location.lng));
            Err(OutOfStock { nearest: nearest_filling(candidates, lines, lat, lng, |l| l.pickup) })
        }
        Fulfillment::Delivery { lat, lng, allow_split } => {
            let mut by_distance: Vec<(&Candidate, f64)> =
                candidates.iter().map(|c| (c, distance_km(*lat, *lng, c.location.lat, c.location.lng))).collect();
            by_distance.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.location.id.cmp(&b.0.location.id)));
            type Eligible = Box<dyn Fn(&Candidate, f64) -> bool>;
            let tiers: [(&str, Eligible); 3] = [
                (
                    "nearest store within its delivery radius",
                    Box::new(|c, d| c.location.kind == LocationKind::Store && c.location.delivers_to(d)),
                ),
                ("nearest regional warehouse", Box::new(|c, _| c.location.kind == LocationKind::RegionalWarehouse)),
                ("central warehouse", Box::new(|c, _| c.location.kind == LocationKind::CentralWarehouse)),
            ];
            for (why, eligible) in &tiers {
                if let Some((c, d)) = by_distance.iter().find(|(c, d)| eligible(c, *d) && c.fills(lines)) {
                    return Ok(Route {
                        allocations: whole(c),
                        reason: format!("{why} ({}, {d:.1} km)", c.location.id),
                    });
                }
            }
            if *allow_split {
                // The same order of preference, line by line, taking what each can promise.
                let mut left = lines.clone();
                let mut allocations = Vec::new();
                for (_, eligible) in &tiers {
                    for (c, _) in by_distance.iter().filter(|(c, d)| eligible(c, *d)) {
                        for (sku, want) in left.iter_mut() {
                            let take = (*want).min(c.atp.get(sku).copied().unwrap_or(0));
                            if take > 0 {
                                allocations.push(Allocation {
                                    location_id: c.location.id.clone(),
                                    sku: sku.clone(),
                                    qty: take,
                                });
                                *want -= take;
                            }
                        }
                    }
                }
                if left.values().all(|q| *q == 0) {
                    let mut places: Vec<&str> = allocations.iter().map(|a| a.location_id.as_str()).collect();
                    places.sort();
                    places.dedup();
                    return Ok(Route {
                        reason: format!("split across {} locations: no single one has it all", places.len()),
                        allocations,
                    });
                }
            }
            Err(OutOfStock { nearest: nearest_filling(candidates, lines, *lat, *lng, |_| true) })
        }
    }
}

fn nearest_filling(
    candidates: &[Candidate],
    lines: &BTreeMap<String, i64>,
    lat: f64,
    lng: f64,
    keep: impl Fn(&Location) -> bool,
) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = candidates
        .iter()
        .filter(|c| keep(c.location) && c.fills(lines))
        .map(|c| (c.location.id.clone(), distance_km(lat, lng, c.location.lat, c.location.lng)))
        .collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1));
    v.truncate(5);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(id: &str, kind: LocationKind, lat: f64, lng: f64, radius: f64) -> Location {
        Location {
            id: id.into(),
            name: id.into(),
            kind,
            lat,
            lng,
            pickup: kind == LocationKind::Store,
            ship_from_store: radius > 0.0,
            delivery_radius_km: radius,
            safety_stock: 0,
            opening_hours: None,
        }
    }

    fn cand<'a>(l: &'a Location, stock: &[(&str, i64)]) -> Candidate<'a> {
        Candidate { location: l, atp: stock.iter().map(|(s, q)| (s.to_string(), *q)).collect() }
    }

    fn want(items: &[(&str, i64)]) -> BTreeMap<String, i64> {
        items.iter().map(|(s, q)| (s.to_string(), *q)).collect()
    }

    #[test]
    fn distances_are_great_circle_km() {
        // West Lake to Shanghai People's Square: about 165 km.
        let d = distance_km(30.2590, 120.1388, 31.2304, 121.4737);
        assert!((160.0..170.0).contains(&d), "{d}");
        assert!(distance_km(30.0, 120.0, 30.0, 120.0).abs() < 1e-9);
    }

    /// A small map of Hangzhou: two stores 1 km and 4 km from the shopper, a regional and a
    /// central warehouse far away.
    #[test]
    fn routing_known_answers() {
        let home = (30.2741, 120.1551);
        let near = loc("S-NEAR", LocationKind::Store, 30.2831, 120.1551, 3.0); // ~1.0 km north
        let far = loc("S-FAR", LocationKind::Store, 30.3101, 120.1551, 5.0); // ~4.0 km north, radius 5
        let regional = loc("R-HZ", LocationKind::RegionalWarehouse, 30.40, 120.30, 0.0);
        let central = loc("C-SH", LocationKind::CentralWarehouse, 31.23, 121.47, 0.0);
        let delivery = Fulfillment::Delivery { lat: home.0, lng: home.1, allow_split: false };

        // The nearest store whose radius covers the address and has everything.
        let c = [
            cand(&near, &[("A", 5), ("B", 5)]),
            cand(&far, &[("A", 9), ("B", 9)]),
            cand(&regional, &[("A", 99), ("B", 99)]),
        ];
        let r = route(&delivery, &want(&[("A", 2), ("B", 1)]), &c).expect("routed");
        assert!(r.allocations.iter().all(|a| a.location_id == "S-NEAR"), "{r:?}");
        assert!(r.reason.starts_with("nearest store within its delivery radius (S-NEAR"), "{}", r.reason);

        // The near store lacks B: the far store (4 km, radius 5) fills it whole.
        let c = [cand(&near, &[("A", 5)]), cand(&far, &[("A", 9), ("B", 9)]), cand(&regional, &[("A", 99), ("B", 99)])];
        let r = route(&delivery, &want(&[("A", 2), ("B", 1)]), &c).expect("routed");
        assert!(r.allocations.iter().all(|a| a.location_id == "S-FAR"));

        // No store fills it: the regional warehouse, even though a store is nearer.
        let c = [
            cand(&near, &[("A", 5)]),
            cand(&far, &[("B", 9)]),
            cand(&regional, &[("A", 99), ("B", 99)]),
            cand(&central, &[("A", 9), ("B", 9)]),
        ];
        let r = route(&delivery, &want(&[("A", 2), ("B", 1)]), &c).expect("routed");
        assert!(r.allocations.iter().all(|a| a.location_id == "R-HZ") && r.reason.starts_with("nearest regional"));

        // Only the central warehouse has it.
        let c = [cand(&near, &[("A", 1)]), cand(&central, &[("A", 9), ("B", 9)])];
        let r = route(&delivery, &want(&[("A", 2), ("B", 1)]), &c).expect("routed");
        assert!(r.allocations.iter().all(|a| a.location_id == "C-SH"));

        // Nobody has it all: refused, unless the order allows a split.
        let c = [cand(&near, &[("A", 2)]), cand(&far, &[("B", 1)])];
        let e = route(&delivery, &want(&[("A", 2), ("B", 1)]), &c).expect_err("no single location");
        assert!(e.nearest.is_empty());
        let split = Fulfillment::Delivery { lat: home.0, lng: home.1, allow_split: true };
        let r = route(&split, &want(&[("A", 2), ("B", 1)]), &c).expect("split");
        assert_eq!(
            r.allocations,
            vec![
                Allocation { location_id: "S-NEAR".into(), sku: "A".into(), qty: 2 },
                Allocation { location_id: "S-FAR".into(), sku: "B".into(), qty: 1 },
            ]
        );
        assert!(r.reason.starts_with("split across 2 locations"));

        // A store 6 km away with radius 5 does not deliver here.
        let out = loc("S-OUT", LocationKind::Store, 30.3281, 120.1551, 5.0);
        let c = [cand(&out, &[("A", 9)])];
        assert!(route(&delivery, &want(&[("A", 1)]), &c).is_err());
    }

    #[test]
    fn pickup_reserves_at_the_chosen_store_or_names_the_nearest_that_have_it() {
        let chosen = loc("S1", LocationKind::Store, 30.27, 120.15, 0.0);
        let two_km = loc("S2", LocationKind::Store, 30.288, 120.15, 0.0);
        let ten_km = loc("S3", LocationKind::Store, 30.36, 120.15, 0.0);
        let wh = loc("R1", LocationKind::RegionalWarehouse, 30.27, 120.16, 0.0);
        let pick = Fulfillment::Pickup { store_id: "S1".into() };
        let c = [
            cand(&chosen, &[("A", 1)]),
            cand(&two_km, &[("A", 3)]),
            cand(&ten_km, &[("A", 3)]),
            cand(&wh, &[("A", 99)]),
        ];
        let r = route(&pick, &want(&[("A", 1)]), &c).expect("at S1");
        assert_eq!(r.reason, "pickup at S1");
        let e = route(&pick, &want(&[("A", 2)]), &c).expect_err("S1 has one");
        // Warehouses do no pick-up: only the stores, nearest first.
        assert_eq!(e.nearest.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), vec!["S2", "S3"]);
    }

    #[test]
    fn updates_apply_in_sequence_and_stale_ones_are_refused() {
        assert_eq!(apply(5, None, Change::Snapshot(12), Some(1)), Ok(12));
        assert_eq!(apply(12, Some(1), Change::Delta(-3), Some(2)), Ok(9));
        assert_eq!(apply(9, Some(2), Change::Snapshot(40), Some(2)), Err(Refused::Stale { last_seq: 2 }));
        assert_eq!(apply(9, Some(7), Change::Delta(1), None), Ok(10), "no seq: always applies");
        assert_eq!(available_to_promise(10, 3, 2), 5);
        assert_eq!(available_to_promise(-2, 0, 2), 0);
    }
}
