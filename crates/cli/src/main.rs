//! `ronghe`: serve, demo, keys. Parses options, sets up logging and hands over to the
//! server and store crates.

use anyhow::Context;
use clap::Parser;
use ronghe_cli::opt::{
    Cli, Command, DemoOpt, ImportCommand, ImportMembersOpt, KeysCommand, KeysCreateOpt, LogFormat, ServeOpt, StoreOpt,
};
use ronghe_domain::auth::Role;
use ronghe_server::clock::{Clock, SystemClock};
use ronghe_server::ratelimit::Limit;
use ronghe_store::{Store, keys, members};
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        match cli.command {
            Command::Serve(o) => serve(o).await,
            Command::Demo(o) => demo(o).await,
            Command::Keys(KeysCommand::Create(o)) => create_key(o).await,
            Command::Import(ImportCommand::Members(o)) => import_members(o).await,
            Command::Import(ImportCommand::Transactions(o)) => import_transactions(o).await,
        }
    })
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn open(o: &StoreOpt) -> anyhow::Result<Store> {
    let opts = o.options();
    let store = tokio::task::spawn_blocking(move || Store::open(&opts)).await??;
    Ok(store)
}

async fn serve(o: ServeOpt) -> anyhow::Result<()> {
    let store = open(&o.store).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now_ms();
    if let Some(secret) = o.admin_key.clone().filter(|k| !k.is_empty()) {
        store.write(move |tx, _| keys::ensure_admin(tx, &secret, now)).await?;
    } else {
        let created = store
            .write(move |tx, _| {
                if keys::count(tx)? > 0 {
                    return Ok(None);
                }
                let key = keys::NewKey { role: Role::Admin, name: "first admin".into(), store_id: None, channel: None };
                keys::create(tx, &key, now).map(Some)
            })
            .await?;
        if let Some(k) = created {
            // Printed once, to the terminal only: it is never shown again.
            println!("Created the first admin API key (shown once, keep it safe):\n\n    {}\n", k.secret);
        }
    }
    if o.demo {
        let empty = store.read(|tx, _| members::count_active(tx)).await? == 0;
        if empty {
            let (regs, orders) = ronghe_cli::demo::load(&store, o.demo_members, 42, now).await?;
            tracing::info!(registrations = regs, orders, "demo data loaded");
        }
    }
    let mut unmasked = Vec::new();
    for r in &o.unmasked_roles {
        unmasked.push(Role::parse(r.trim()).with_context(|| format!("--unmasked-roles: unknown role `{r}`"))?);
    }
    let mut by_store = std::collections::HashMap::new();
    for item in o.offline_points_limit_store.iter().filter(|s| !s.trim().is_empty()) {
        let (store, points) = item
            .split_once('=')
            .and_then(|(s, p)| Some((s.trim().to_string(), p.trim().parse::<i64>().ok()?)))
            .with_context(|| format!("--offline-points-limit-store: `{item}` is not STORE=POINTS"))?;
        by_store.insert(store, points);
    }
    let config = ronghe_server::Config {
        max_body_bytes: o.max_body_bytes,
        rate_limit: Limit { per_second: o.rate_limit, burst: o.rate_burst },
        lookup_rate_limit: Limit { per_second: o.lookup_rate_limit, burst: o.lookup_burst },
        unmasked_roles: unmasked,
        offline_points_limit: o.offline_points_limit,
        offline_points_limits_by_store: by_store,
        payment_timeout_ms: o.payment_timeout_minutes.max(1) * 60_000,
        tracking_origins: o.tracking_origins.clone(),
        pickup_expiry_ms: o.pickup_expiry_hours.max(1) * 3_600_000,
        ..Default::default()
    };
    let listener =
        tokio::net::TcpListener::bind(&o.listen).await.with_context(|| format!("cannot listen on {}", o.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = ?store.dialect(), "ronghe is listening");
    println!("Ronghe is listening on http://{addr}");
    let state = ronghe_server::AppState::new(store, clock, config);
    ronghe_server::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM (service managers) or Ctrl-C: stop accepting, finish what is in flight.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing requests in flight");
}

async fn demo(o: DemoOpt) -> anyhow::Result<()> {
    let store = open(&o.store).await?;
    let now = SystemClock.now_ms();
    let (regs, orders) = ronghe_cli::demo::load(&store, o.members, o.seed, now).await?;
    println!("Wrote {} demo members ({regs} registrations) and {orders} orders (seed {})", o.members, o.seed);
    Ok(())
}

async fn create_key(o: KeysCreateOpt) -> anyhow::Result<()> {
    let key = ronghe_server::routes::admin::new_key(&o.role, o.name.clone(), o.store_id.clone(), o.channel.clone())
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let store = open(&o.store).await?;
    let now = SystemClock.now_ms();
    let k = key.clone();
    let created = store.write(move |tx, _| keys::create(tx, &k, now)).await?;
    println!("{}", created.secret);
    eprintln!("created {} key {} ({})", key.role.as_str(), created.id, key.name);
    Ok(())
}

async fn import_members(o: ImportMembersOpt) -> anyhow::Result<()> {
    let store = open(&o.store).await?;
    let now = SystemClock.now_ms();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = ronghe_cli::import::members(&store, &o.file, now, progress).await?;
    // The report is JSON on stdout (for scripts); a summary goes to stderr (for people).
    println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    eprintln!(
        "{} rows: {} members created, {} already known, {} opening balances credited, {} coupons added, {} rows refused",
        report.rows,
        report.created,
        report.existing,
        report.points_credited,
        report.coupons_added,
        report.errors.len()
    );
    if !report.errors.is_empty() {
        std::process::exit(2);
    }
    Ok(())
}

async fn import_transactions(o: ImportMembersOpt) -> anyhow::Result<()> {
    let store = open(&o.store).await?;
    let now = SystemClock.now_ms();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = ronghe_cli::transactions::import(&store, &o.file, now, progress).await?;
    println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    eprintln!(
        "{} rows: {} orders imported, {} already imported, {} new members, {} rows refused",
        report.rows,
        report.imported.orders,
        report.imported.duplicates,
        report.imported.new_members,
        report.errors.len()
    );
    if !report.errors.is_empty() {
        std::process::exit(2);
    }
    Ok(())
}
