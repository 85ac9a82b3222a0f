//! Webhook deliveries as the Standard Webhooks specification signs them, and when a failed
//! one is tried again.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature header value for a message: `v1,` + base64(HMAC-SHA256(key, "id.timestamp.body")),
/// where the key is the base64 part of a `whsec_…` secret.
pub fn sign(secret: &str, msg_id: &str, timestamp_s: i64, body: &str) -> Option<String> {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{msg_id}.{timestamp_s}.{body}").as_bytes());
    Some(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())))
}

/// A secret from 24 random bytes the caller drew.
pub fn secret_from(bytes: &[u8]) -> String {
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// After `attempts` failed attempts, how long to wait before the next one, or None when the
/// delivery is dead-lettered (the schedule the specification suggests: 5 s, 5 min, 30 min,
/// 2 h, 5 h, 10 h, 10 h — eight attempts in about a day).
pub fn retry_after_ms(attempts: i64) -> Option<i64> {
    const SCHEDULE_S: [i64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];
    usize::try_from(attempts - 1).ok().and_then(|i| SCHEDULE_S.get(i)).map(|s| s * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_like_the_reference_implementation() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).expect("valid secret");
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        assert_eq!(retry_after_ms(1), Some(5_000));
        assert_eq!(retry_after_ms(2), Some(300_000));
        assert_eq!(retry_after_ms(7), Some(36_000_000));
        assert_eq!(retry_after_ms(8), None);
        assert_eq!(sign("not-a-secret", "m", 1, "{}"), None);
    }
}
