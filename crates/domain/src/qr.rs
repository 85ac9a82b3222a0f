//! The member QR code (会员码): a short-lived token the mini-program shows and the till scans.
//! `base64url(member_id "." expires_ms) "." base64url(HMAC-SHA-256 truncated to 16 bytes)`.
//! It carries no personal data; it is signed with a key derived from the master key.

use crate::Millis;
use crate::error::{Code, DomainError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How long a token is valid: about a minute, as the till scans it at once.
pub const TTL_MS: Millis = 60_000;

pub fn sign(key: &[u8], member_id: &str, expires_at: Millis) -> String {
    let payload = B64.encode(format!("{member_id}.{expires_at}"));
    let tag = mac(key, payload.as_bytes());
    format!("{payload}.{}", B64.encode(tag))
}

/// The member id inside a valid, unexpired token.
pub fn verify(key: &[u8], token: &str, now: Millis) -> Result<String, DomainError> {
    let bad = || DomainError::new(Code::InvalidQrToken, "the member code is not valid; ask the member to refresh it");
    let (payload, tag) = token.trim().split_once('.').ok_or_else(bad)?;
    let tag = B64.decode(tag).map_err(|_| bad())?;
    if mac(key, payload.as_bytes()).ct_eq(&tag).unwrap_u8() != 1 {
        return Err(bad());
    }
    let payload = String::from_utf8(B64.decode(payload).map_err(|_| bad())?).map_err(|_| bad())?;
    let (member_id, exp) = payload.rsplit_once('.').ok_or_else(bad)?;
    let exp: Millis = exp.parse().map_err(|_| bad())?;
    if now > exp {
        return Err(DomainError::new(
            Code::InvalidQrToken,
            "the member code has expired; ask the member to refresh it",
        ));
    }
    Ok(member_id.to_string())
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    let full = m.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_expiry_and_forgery() {
        let key = [7u8; 32];
        let t = sign(&key, "m_abc", 1_000 + TTL_MS);
        assert_eq!(verify(&key, &t, 1_000).unwrap(), "m_abc");
        assert_eq!(verify(&key, &t, 2_000 + TTL_MS).unwrap_err().code, Code::InvalidQrToken);
        assert!(verify(&[8u8; 32], &t, 1_000).is_err());
        let forged = sign(&key, "m_xyz", 1_000 + TTL_MS);
        let (_, tag) = t.split_once('.').unwrap();
        let (payload, _) = forged.split_once('.').unwrap();
        assert!(verify(&key, &format!("{payload}.{tag}"), 1_000).is_err());
        assert!(verify(&key, "garbage", 1_000).is_err());
    }
}
