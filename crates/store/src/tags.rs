//! Tags: manual ones held per member (added and removed in bulk), and rule tags whose
//! membership the audience index computes from their segment rule.

use crate::db::DbError;
use crate::db::Tx;
use crate::{Result, members, vals};
use ronghe_domain::{Code, DomainError, Millis};

#[derive(Debug, Clone, serde::Serialize)]
pub struct Tag {
    pub name: String,
    /// `manual` or `rule`.
    pub kind: String,
    pub rule: Option<serde_json::Value>,
    pub description: Option<String>,
    pub created_at: Millis,
}

pub fn list(tx: &mut dyn Tx) -> Result<Vec<Tag>> {
    tx.query("SELECT name, kind, rule, description, created_at FROM tags ORDER BY name", &[])?
        .iter()
        .map(|r| {
            Ok(Tag {
                name: r.string(0)?,
                kind: r.string(1)?,
                rule: r
                    .opt_string(2)?
                    .map(|s| serde_json::from_str(&s))
                    .transpose()
                    .map_err(|e| DbError::Other(e.to_string()))?,
                description: r.opt_string(3)?,
                created_at: r.i64(4)?,
            })
        })
        .collect()
}

/// Define a tag, or change its rule or description. A manual tag cannot become a rule tag
/// while members hold it, nor the reverse.
pub fn define(
    tx: &mut dyn Tx,
    name: &str,
    rule: Option<&serde_json::Value>,
    description: Option<&str>,
    now: Millis,
) -> Result<Tag> {
    let kind = if rule.is_some() { "rule" } else { "manual" };
    if let Some(r) = tx.query_one("SELECT kind FROM tags WHERE name = $1", vals![name])? {
        let old = r.string(0)?;
        if old != kind {
            return Err(DomainError::new(Code::Conflict, format!("tag {name:?} is a {old} tag")).into());
        }
    }
    let rule_text = rule.map(|r| r.to_string());
    tx.exec(
        "INSERT INTO tags (name, kind, rule, description, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET rule = excluded.rule,
            description = COALESCE(excluded.description, tags.description)",
        vals![name, kind, rule_text, description, now],
    )?;
    Ok(list(tx)?.into_iter().find(|t| t.name == name).ok_or_else(|| DbError::Other("tag vanished".into()))?)
}

/// Add (or remove) a manual tag for members; unknown ids are returned, not fatal. The tag is
/// created on first use. Returns (changed member ids, unknown ids).
pub fn apply(
    tx: &mut dyn Tx,
    tag: &str,
    member_ids: &[String],
    add: bool,
    now: Millis,
) -> Result<(Vec<String>, Vec<String>)> {
    match tx.query_one("SELECT kind FROM tags WHERE name = $1", vals![tag])? {
        Some(r) if r.string(0)? == "rule" => {
            return Err(DomainError::field(
                "tag",
                "a rule tag follows its rule; it cannot be added or removed by hand",
            )
            .into());
        }
        Some(_) => {}
        None if add => {
            tx.exec("INSERT INTO tags (name, kind, created_at) VALUES ($1, 'manual', $2)", vals![tag, now])?;
        }
        None => return Ok((Vec::new(), member_ids.to_vec())),
    }
    let (mut changed, mut unknown) = (Vec::new(), Vec::new());
    for id in member_ids {
        let id = match members::resolve(tx, id) {
            Ok(id) => id,
            Err(crate::Error::Domain(_)) => {
                unknown.push(id.clone());
                continue;
            }
            Err(e) => return Err(e),
        };
        let n = if add {
            tx.exec(
                "INSERT INTO member_tags (member_id, tag, at) VALUES ($1, $2, $3) ON CONFLICT (member_id, tag) DO NOTHING",
                vals![id.as_str(), tag, now],
            )?
        } else {
            tx.exec("DELETE FROM member_tags WHERE member_id = $1 AND tag = $2", vals![id.as_str(), tag])?
        };
        if n > 0 {
            changed.push(id);
        }
    }
    Ok((changed, unknown))
}

/// Merge: the survivor holds the union of both members' tags.
pub fn merge(tx: &mut dyn Tx, into: &str, from: &str) -> Result<()> {
    tx.exec(
        "INSERT INTO member_tags (member_id, tag, at) SELECT $1, tag, at FROM member_tags WHERE member_id = $2
         ON CONFLICT (member_id, tag) DO NOTHING",
        vals![into, from],
    )?;
    tx.exec("DELETE FROM member_tags WHERE member_id = $1", vals![from])?;
    Ok(())
}
