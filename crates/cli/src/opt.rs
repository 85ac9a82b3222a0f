//! Flags, environment variables and `--help`, all from one struct per subcommand.

use clap::{Args, Parser, Subcommand, ValueEnum};
use ronghe_store::{Location, StoreOptions};
use std::path::PathBuf;

/// Ronghe (融合): one member, points, coupons, behaviour and stock across every channel.
#[derive(Debug, Parser)]
#[command(name = "ronghe", version)]
pub struct Cli {
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "RONGHE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeOpt),
    /// Write the demo data set into the store, then exit.
    Demo(DemoOpt),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Import data from other systems.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Members from a legacy CRM with their opening points, tiers and open coupons. CSV header:
    /// `external_id,phone,email,name,city,points,tier,coupons` (only external_id required;
    /// coupons as `template_id:CODE;template_id:CODE`). Safe to run twice.
    Members(ImportMembersOpt),
    /// Purchase history from a POS or ERP. CSV header: `member_id,ordered_at,amount` required,
    /// then optional `quantity,store_id,channel,sku,order_ref`. `member_id` is your customer
    /// number (an external_id identity; unknown ones become members), `ordered_at` is
    /// YYYY-MM-DD or RFC 3339, `amount` is yuan with up to 2 decimals, `channel` defaults to
    /// pos. Safe to run twice. Imported orders earn no points and move no stock.
    Transactions(ImportMembersOpt),
}

#[derive(Debug, Clone, Args)]
pub struct ImportMembersOpt {
    #[command(flatten)]
    pub store: StoreOpt,
    /// The CSV file.
    pub file: std::path::PathBuf,
}

/// Where the data lives; every subcommand that touches the store takes these.
#[derive(Debug, Clone, Args)]
pub struct StoreOpt {
    /// Data folder for the embedded SQLite store.
    #[arg(long = "data", env = "RONGHE_DATA", default_value = "./ronghe-data")]
    pub data: PathBuf,
    /// `postgres://user:pass@host/db` to use PostgreSQL instead of the data folder.
    #[arg(long, env = "RONGHE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Master key for personal data (64 hex characters). Required with PostgreSQL; on SQLite a
    /// key file is created in the data folder when it is absent.
    #[arg(long, env = "RONGHE_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
}

impl StoreOpt {
    pub fn options(&self) -> StoreOptions {
        let location = match &self.database_url {
            Some(url) if !url.is_empty() => Location::Postgres(url.clone()),
            _ => Location::Sqlite(self.data.clone()),
        };
        StoreOptions { master_key: self.master_key.clone().filter(|k| !k.is_empty()), ..StoreOptions::new(location) }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeOpt {
    #[command(flatten)]
    pub store: StoreOpt,
    /// Address to listen on.
    #[arg(long, env = "RONGHE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Load the demo data set into an empty store before serving.
    #[arg(long)]
    pub demo: bool,
    /// Members in the demo data set.
    #[arg(long, default_value_t = 200)]
    pub demo_members: usize,
    /// Make sure an admin API key with this value exists (for automation and tests).
    #[arg(long, env = "RONGHE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "RONGHE_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Requests per second per API key (0 = no limit).
    #[arg(long, env = "RONGHE_RATE_LIMIT", default_value_t = 2000.0)]
    pub rate_limit: f64,
    /// Burst of requests per API key above the steady rate.
    #[arg(long, env = "RONGHE_RATE_BURST", default_value_t = 4000.0)]
    pub rate_burst: f64,
    /// Member lookups per second per non-admin key (0 = no limit): a till that looks up
    /// thousands of phone numbers is enumerating members.
    #[arg(long, env = "RONGHE_LOOKUP_RATE_LIMIT", default_value_t = 10.0)]
    pub lookup_rate_limit: f64,
    /// Burst of lookups per non-admin key.
    #[arg(long, env = "RONGHE_LOOKUP_BURST", default_value_t = 100.0)]
    pub lookup_burst: f64,
    /// Points a till may redeem per order while offline (checked when it syncs its batch).
    #[arg(long, env = "RONGHE_OFFLINE_POINTS_LIMIT", default_value_t = 5_000)]
    pub offline_points_limit: i64,
    /// Per-store offline limits, e.g. `S001=2000,S002=0` (stores not listed use the default).
    #[arg(long, env = "RONGHE_OFFLINE_POINTS_LIMITS", value_delimiter = ',')]
    pub offline_points_limit_store: Vec<String>,
    /// Minutes an online order may wait for payment before it is cancelled.
    #[arg(long, env = "RONGHE_PAYMENT_TIMEOUT_MINUTES", default_value_t = 30)]
    pub payment_timeout_minutes: i64,
    /// Hours a pick-up waits for its shopper before it is cancelled (points, coupons and stock
    /// come back).
    #[arg(long, env = "RONGHE_PICKUP_EXPIRY_HOURS", default_value_t = 72)]
    pub pickup_expiry_hours: i64,
    /// Web origins allowed to send events from a browser (CORS on the tracking endpoints),
    /// comma-separated, e.g. `https://shop.example.cn`; `*` allows any.
    #[arg(long, env = "RONGHE_TRACKING_ORIGINS", value_delimiter = ',')]
    pub tracking_origins: Vec<String>,
    /// Roles that see personal data unmasked (comma-separated).
    #[arg(long, env = "RONGHE_UNMASKED_ROLES", value_delimiter = ',', default_value = "admin,marketer")]
    pub unmasked_roles: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DemoOpt {
    #[command(flatten)]
    pub store: StoreOpt,
    /// How many members to create.
    #[arg(long, default_value_t = 200)]
    pub members: usize,
    /// Seed: the same seed gives the same data set.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key and print it once.
    Create(KeysCreateOpt),
}

#[derive(Debug, Clone, Args)]
pub struct KeysCreateOpt {
    #[command(flatten)]
    pub store: StoreOpt,
    /// admin, marketer, analyst, store, channel or tracker.
    #[arg(long)]
    pub role: String,
    /// For a store key: the store it writes for.
    #[arg(long = "store")]
    pub store_id: Option<String>,
    /// For a channel or tracker key: its channel (mini_program, app, web…).
    #[arg(long)]
    pub channel: Option<String>,
    /// A name to recognise the key by.
    #[arg(long)]
    pub name: Option<String>,
}

impl ServeOpt {
    /// Options for a test server on an ephemeral port with its own data folder.
    pub fn for_tests(dir: &std::path::Path) -> ServeOpt {
        ServeOpt {
            store: StoreOpt { data: dir.to_path_buf(), database_url: None, master_key: None },
            listen: "127.0.0.1:0".into(),
            demo: false,
            demo_members: 20,
            admin_key: None,
            max_body_bytes: 1 << 20,
            rate_limit: 0.0,
            rate_burst: 0.0,
            lookup_rate_limit: 0.0,
            lookup_burst: 0.0,
            unmasked_roles: vec!["admin".into(), "marketer".into()],
            offline_points_limit: 5_000,
            offline_points_limit_store: Vec::new(),
            payment_timeout_minutes: 30,
            tracking_origins: Vec::new(),
            pickup_expiry_hours: 72,
        }
    }
}
