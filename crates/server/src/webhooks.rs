//! The webhook dispatcher: every second it turns new outbox rows into deliveries (in the
//! store, so a restart loses none) and sends the deliveries that are due, signed as the
//! Standard Webhooks specification says, retrying failures on its schedule and dead-lettering
//! the last. Delivery is at least once: receivers deduplicate on `webhook-id`.

use crate::AppState;
use crate::problem::ApiError;
use ronghe_store::webhooks;
use std::time::Duration;

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Round {
    pub created: u64,
    pub delivered: u64,
    pub failed: u64,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Fan the outbox out into deliveries, then send what is due.
pub async fn dispatch_once(state: &AppState) -> Result<Round, ApiError> {
    let mut round = Round::default();
    loop {
        let now = state.now();
        let (read, made) = state.store.write(move |tx, _| webhooks::fan_out(tx, 1000, now)).await?;
        round.created += made;
        if read < 1000 {
            break;
        }
    }
    let now = state.now();
    let due = state.store.read(move |tx, _| webhooks::due(tx, now, 100)).await?;
    for d in due {
        let ts = now / 1000;
        let msg_id = format!("msg_{}", d.id);
        let Some(signature) = ronghe_domain::webhook::sign(&d.secret, &msg_id, ts, &d.payload) else {
            state
                .store
                .write(move |tx, _| {
                    webhooks::record_attempt(tx, d.id, false, Some("the signing secret is invalid"), None, now)
                })
                .await?;
            round.failed += 1;
            continue;
        };
        let sent = state
            .webhook_client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(d.payload.clone())
            .send()
            .await;
        let (ok, error) = match sent {
            Ok(r) if r.status().is_success() => (true, None),
            Ok(r) => (false, Some(format!("answered {}", r.status().as_u16()))),
            Err(e) => {
                (false, Some(if e.is_timeout() { "timed out".to_string() } else { "could not connect".to_string() }))
            }
        };
        let retry_at = ronghe_domain::webhook::retry_after_ms(d.attempts + 1).map(|ms| now + ms);
        let id = d.id;
        state.store.write(move |tx, _| webhooks::record_attempt(tx, id, ok, error.as_deref(), retry_at, now)).await?;
        if ok {
            round.delivered += 1;
        } else {
            round.failed += 1;
        }
    }
    Ok(round)
}

/// Run rounds every `webhook_interval_ms` until the server stops.
pub fn spawn(state: AppState) {
    if state.config.webhook_interval_ms == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(state.config.webhook_interval_ms));
        loop {
            tick.tick().await;
            if let Err(e) = dispatch_once(&state).await {
                tracing::warn!(code = %e.error.code, "webhook dispatch failed");
            }
        }
    });
}
