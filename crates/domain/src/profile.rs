//! A member's profile (name, gender, birthday, city, address) and custom attributes whose
//! types are declared once, so that segments can compare them later.

use crate::error::{DomainError, Validator};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
    Other,
    Unknown,
}

impl Gender {
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Other => "other",
            Gender::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Option<Gender> {
        [Gender::Male, Gender::Female, Gender::Other, Gender::Unknown].into_iter().find(|g| g.as_str() == s)
    }
}

/// The profile fields. `name`, `birthday` and `address` are personal data: the store keeps
/// them encrypted and the server masks them for roles that may not see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub name: Option<String>,
    pub gender: Option<Gender>,
    /// `YYYY-MM-DD`, validated as a real calendar date.
    pub birthday: Option<String>,
    pub city: Option<String>,
    pub address: Option<String>,
}

impl Profile {
    /// Validate raw input fields; empty strings count as absent.
    pub fn parse(
        name: Option<&str>,
        gender: Option<&str>,
        birthday: Option<&str>,
        city: Option<&str>,
        address: Option<&str>,
    ) -> Result<Profile, DomainError> {
        let mut v = Validator::new();
        let text = |v: &mut Validator, field: &str, s: Option<&str>, max: usize| -> Option<String> {
            let s = s.map(str::trim).filter(|s| !s.is_empty())?;
            if s.chars().count() > max || s.chars().any(char::is_control) {
                v.push(field, format!("at most {max} characters, no control characters"));
                return None;
            }
            Some(s.to_string())
        };
        let name = text(&mut v, "name", name, 64);
        let city = text(&mut v, "city", city, 64);
        let address = text(&mut v, "address", address, 256);
        let gender = match gender.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(g) => match Gender::parse(g) {
                Some(g) => Some(g),
                None => {
                    v.push("gender", "one of male, female, other, unknown");
                    None
                }
            },
        };
        let birthday = match birthday.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(b) => match b.parse::<jiff::civil::Date>() {
                Ok(d) if b.len() == 10 && d.year() >= 1900 => Some(d.to_string()),
                _ => {
                    v.push("birthday", "a date YYYY-MM-DD from 1900 on");
                    None
                }
            },
        };
        v.finish()?;
        Ok(Profile { name, gender, birthday, city, address })
    }

    /// Fill each empty field from `other` (registration fills, never overwrites).
    pub fn fill_from(&mut self, other: &Profile) -> bool {
        let before = self.clone();
        fill(&mut self.name, &other.name);
        fill(&mut self.gender, &other.gender);
        fill(&mut self.birthday, &other.birthday);
        fill(&mut self.city, &other.city);
        fill(&mut self.address, &other.address);
        *self != before
    }

    /// Overwrite each field that `other` sets (an explicit profile update).
    pub fn update_from(&mut self, other: &Profile) {
        let set = |dst: &mut Option<String>, src: &Option<String>| {
            if src.is_some() {
                dst.clone_from(src)
            }
        };
        set(&mut self.name, &other.name);
        set(&mut self.birthday, &other.birthday);
        set(&mut self.city, &other.city);
        set(&mut self.address, &other.address);
        if other.gender.is_some() {
            self.gender = other.gender;
        }
    }
}

fn fill<T: Clone>(dst: &mut Option<T>, src: &Option<T>) {
    if dst.is_none() {
        dst.clone_from(src);
    }
}

/// The declared type of a custom attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeKind {
    String,
    Number,
    Bool,
    Date,
}

impl AttributeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeKind::String => "string",
            AttributeKind::Number => "number",
            AttributeKind::Bool => "bool",
            AttributeKind::Date => "date",
        }
    }
    pub fn parse(s: &str) -> Option<AttributeKind> {
        [AttributeKind::String, AttributeKind::Number, AttributeKind::Bool, AttributeKind::Date]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// Check a JSON value against this type; `null` removes the attribute and always passes.
    pub fn check(self, value: &serde_json::Value) -> Result<(), String> {
        use serde_json::Value as J;
        let ok = match (self, value) {
            (_, J::Null) => true,
            (AttributeKind::String, J::String(s)) => s.chars().count() <= 256,
            (AttributeKind::Number, J::Number(n)) => n.as_f64().is_some_and(f64::is_finite),
            (AttributeKind::Bool, J::Bool(_)) => true,
            (AttributeKind::Date, J::String(s)) => s.len() == 10 && s.parse::<jiff::civil::Date>().is_ok(),
            _ => false,
        };
        if ok { Ok(()) } else { Err(format!("expected a {} value", self.as_str())) }
    }
}

/// A valid attribute name: lower-case ASCII letters, digits and `_`, starting with a letter.
pub fn check_attribute_name(name: &str) -> Result<(), DomainError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok { Ok(()) } else { Err(DomainError::field("name", "1–64 of a-z, 0-9 and _, starting with a letter")) }
}

/// Apply attribute changes (null removes) after checking each against its declaration.
pub fn apply_attributes(
    current: &mut BTreeMap<String, serde_json::Value>,
    changes: &BTreeMap<String, serde_json::Value>,
    declared: &BTreeMap<String, AttributeKind>,
) -> Result<(), DomainError> {
    let mut errors = Vec::new();
    for (name, value) in changes {
        match declared.get(name) {
            None => errors.push(crate::FieldError {
                field: format!("attributes.{name}"),
                code: crate::Code::UnknownAttribute.as_str(),
                message: "declare it first with PUT /v1/attributes/{name}".into(),
            }),
            Some(kind) => {
                if let Err(m) = kind.check(value) {
                    errors.push(crate::FieldError {
                        field: format!("attributes.{name}"),
                        code: crate::Code::InvalidField.as_str(),
                        message: m,
                    });
                }
            }
        }
    }
    if !errors.is_empty() {
        let code = if errors.iter().all(|e| e.code == crate::Code::UnknownAttribute.as_str()) {
            crate::Code::UnknownAttribute
        } else {
            crate::Code::InvalidField
        };
        return Err(DomainError { code, message: "invalid attributes".into(), errors });
    }
    for (name, value) in changes {
        if value.is_null() {
            current.remove(name);
        } else {
            current.insert(name.clone(), value.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn profile_validation_reports_each_field() {
        let e = Profile::parse(Some("王小明"), Some("robot"), Some("1990-02-30"), None, None).unwrap_err();
        let fields: Vec<_> = e.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["gender", "birthday"]);
        let p = Profile::parse(Some(" 王小明 "), Some("male"), Some("1990-02-28"), Some("杭州"), Some("")).unwrap();
        assert_eq!(p.name.as_deref(), Some("王小明"));
        assert_eq!(p.address, None);
    }

    #[test]
    fn fill_never_overwrites() {
        let mut a = Profile { name: Some("王小明".into()), ..Default::default() };
        let b = Profile { name: Some("王明".into()), city: Some("上海".into()), ..Default::default() };
        assert!(a.fill_from(&b));
        assert_eq!(a.name.as_deref(), Some("王小明"));
        assert_eq!(a.city.as_deref(), Some("上海"));
        assert!(!a.fill_from(&b));
    }

    #[test]
    fn attributes_are_checked_against_declarations() {
        let declared = BTreeMap::from([
            ("vip_since".to_string(), AttributeKind::Date),
            ("children".to_string(), AttributeKind::Number),
        ]);
        let mut cur = BTreeMap::new();
        let ok = BTreeMap::from([("children".to_string(), json!(2)), ("vip_since".to_string(), json!("2020-01-01"))]);
        apply_attributes(&mut cur, &ok, &declared).unwrap();
        assert_eq!(cur.len(), 2);
        let bad = BTreeMap::from([("children".to_string(), json!("two")), ("pets".to_string(), json!(1))]);
        let e = apply_attributes(&mut cur, &bad, &declared).unwrap_err();
        assert_eq!(e.errors.len(), 2);
        assert_eq!(cur["children"], json!(2), "nothing applied on error");
        let remove = BTreeMap::from([("children".to_string(), serde_json::Value::Null)]);
        apply_attributes(&mut cur, &remove, &declared).unwrap();
        assert!(!cur.contains_key("children"));
    }
}
