//! Masking of personal data for roles that may not see it: `138****8000`, `王*明`.
//! Masking is lossy on purpose: a masked value identifies nobody on its own.

use crate::identity::IdentityKind;

/// `+8613800138000` → `138****8000`; other countries keep their code: `+44 207****958`.
pub fn phone(e164: &str) -> String {
    let digits = e164.trim_start_matches('+');
    if let Some(national) = digits.strip_prefix("86") {
        return keep_ends(national, 3, 4);
    }
    let cc_len = if digits.starts_with('1') || digits.starts_with('7') { 1 } else { 2 };
    let (cc, national) = digits.split_at(cc_len.min(digits.len()));
    format!("+{cc} {}", keep_ends(national, 3, 3))
}

/// `王小明` → `王*明`, `王明` → `王*`, `欧阳小明` → `欧**明`, `Li` → `L*`.
pub fn name(name: &str) -> String {
    let chars: Vec<char> = name.trim().chars().collect();
    match chars.len() {
        0 => String::new(),
        1 => "*".to_string(),
        2 => format!("{}*", chars[0]),
        n => {
            let mut s = String::new();
            s.push(chars[0]);
            s.extend(std::iter::repeat_n('*', n - 2));
            s.push(chars[n - 1]);
            s
        }
    }
}

/// `wang.ming@example.com` → `w***@example.com`.
pub fn email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

/// A birthday reveals age and identity together: masked fully.
pub fn birthday(_date: &str) -> String {
    "****-**-**".to_string()
}

/// An address keeps its first six characters (usually province and city).
pub fn address(address: &str) -> String {
    let head: String = address.chars().take(6).collect();
    format!("{head}****")
}

/// Opaque identifiers (openids, cards, device ids) keep a short head and tail so that an
/// associate can compare them with a card in hand.
pub fn token(value: &str) -> String {
    if value.chars().count() >= 8 { keep_ends(value, 3, 3) } else { "****".to_string() }
}

pub fn identity(kind: IdentityKind, value: &str) -> String {
    match kind {
        IdentityKind::Phone => phone(value),
        IdentityKind::Email => email(value),
        _ => token(value),
    }
}

fn keep_ends(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len().max(4));
    }
    let mut out: String = chars[..head].iter().collect();
    out.push_str("****");
    out.extend(&chars[chars.len() - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(phone("+8613800138000"), "138****8000");
        assert_eq!(phone("+442079460958"), "+44 207****958");
        assert_eq!(phone("+14155552671"), "+1 415****671");
    }

    #[test]
    fn names() {
        assert_eq!(name("王小明"), "王*明");
        assert_eq!(name("王明"), "王*");
        assert_eq!(name("欧阳小明"), "欧**明");
        assert_eq!(name("王"), "*");
    }

    #[test]
    fn others() {
        assert_eq!(email("wang.ming@example.com"), "w***@example.com");
        assert_eq!(token("oAbCdEfGhIjK"), "oAb****IjK");
        assert_eq!(token("short"), "****");
        assert_eq!(address("浙江省杭州市西湖区文三路 1 号"), "浙江省杭州市****");
        assert_eq!(birthday("1990-05-17"), "****-**-**");
    }

    #[test]
    fn masked_phone_never_contains_the_middle_digits() {
        let m = phone("+8613912345678");
        assert!(!m.contains("1234"));
    }
}
