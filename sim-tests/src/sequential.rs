//! The checker for sequential nodes created concurrently under one parent (pure, unit-tested in
//! the normal build).
//!
//! Every create carries a unique tag as its data. Given what the clients were told and what the
//! parent holds at the end:
//! 1. no two acknowledged creates returned the same name;
//! 2. sequence numbers strictly increase in zxid order: sorted by czxid, the acknowledged
//!    creates' numbers increase (and so do all children's at the end);
//! 3. no acknowledged create is lost: each is present at the end, under its name, with its tag;
//! 4. nothing was applied twice or made up: each child's tag is one that some create attempted
//!    (acknowledged or of unknown outcome), and no tag appears twice.

use std::collections::{BTreeMap, BTreeSet};

/// What one create attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Acknowledged with this name and czxid.
    Acked { tag: String, name: String, czxid: i64 },
    /// Connection loss or timeout: it may or may not exist.
    Unknown { tag: String },
}

/// A child of the parent at the end: its name, czxid and data (the tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub name: String,
    pub czxid: i64,
    pub tag: String,
}

/// The sequence number of a sequential node's name (its last ten digits).
pub fn sequence(name: &str) -> Option<i64> {
    let digits = name.get(name.len().checked_sub(10)?..)?;
    digits.parse().ok()
}

pub fn check(attempts: &[Created], children: &[Child]) -> Result<(), String> {
    // 1. Unique names.
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    let mut acked: Vec<(i64, i64, &str, &str)> = Vec::new();
    for a in attempts {
        if let Created::Acked { tag, name, czxid } = a {
            if let Some(other) = names.insert(name, tag) {
                return Err(format!("{name} acknowledged to two creates: {other:?} and {tag:?}"));
            }
            let seq = sequence(name).ok_or_else(|| format!("{name} has no sequence number"))?;
            acked.push((*czxid, seq, name, tag));
        }
    }
    // 2. Numbers increase with zxids.
    acked.sort();
    for w in acked.windows(2) {
        if w[1].0 == w[0].0 || w[1].1 <= w[0].1 {
            return Err(format!("sequence numbers do not increase in zxid order: {:?} then {:?}", w[0], w[1]));
        }
    }
    let mut by_czxid: Vec<(i64, i64, &str)> = Vec::new();
    for c in children {
        let seq = sequence(&c.name).ok_or_else(|| format!("child {} has no sequence number", c.name))?;
        by_czxid.push((c.czxid, seq, &c.name));
    }
    by_czxid.sort();
    for w in by_czxid.windows(2) {
        if w[1].1 <= w[0].1 {
            return Err(format!("children's sequence numbers do not increase in zxid order: {:?} then {:?}", w[0], w[1]));
        }
    }
    // 3. Acknowledged creates are present.
    let at_end: BTreeMap<&str, &Child> = children.iter().map(|c| (c.name.as_str(), c)).collect();
    for (czxid, _, name, tag) in &acked {
        match at_end.get(name) {
            None => return Err(format!("acknowledged {name} ({tag:?}, czxid {czxid}) is gone")),
            Some(c) if c.tag != *tag || c.czxid != *czxid => {
                return Err(format!("acknowledged {name} ({tag:?}, czxid {czxid}) is now {c:?}"))
            }
            Some(_) => {}
        }
    }
    // 4. Every child is one attempt, once.
    let attempted: BTreeSet<&str> = attempts
        .iter()
        .map(|a| match a {
            Created::Acked { tag, .. } | Created::Unknown { tag } => tag.as_str(),
        })
        .collect();
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for c in children {
        if !attempted.contains(c.tag.as_str()) {
            return Err(format!("child {} holds {:?}, which no create attempted", c.name, c.tag));
        }
        if let Some(other) = seen.insert(&c.tag, &c.name) {
            return Err(format!("create {:?} was applied twice: {other} and {}", c.tag, c.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(tag: &str, seq: i64, czxid: i64) -> Created {
        Created::Acked { tag: tag.into(), name: format!("n-{seq:010}"), czxid }
    }

    fn child(tag: &str, seq: i64, czxid: i64) -> Child {
        Child { name: format!("n-{seq:010}"), czxid, tag: tag.into() }
    }

    #[test]
    fn a_clean_history_passes() {
        let attempts = vec![acked("a", 0, 10), Created::Unknown { tag: "b".into() }, acked("c", 2, 30)];
        let children = vec![child("a", 0, 10), child("b", 1, 20), child("c", 2, 30)];
        assert_eq!(check(&attempts, &children), Ok(()));
        // An unknown create may also not have happened.
        assert_eq!(check(&attempts, &[child("a", 0, 10), child("c", 2, 30)]), Ok(()));
    }

    #[test]
    fn violations_are_caught() {
        let dup = vec![acked("a", 0, 10), acked("b", 0, 20)];
        assert!(check(&dup, &[]).unwrap_err().contains("two creates"));
        let order = vec![acked("a", 1, 10), acked("b", 0, 20)];
        assert!(check(&order, &[child("a", 1, 10), child("b", 0, 20)]).unwrap_err().contains("increase"));
        let lost = vec![acked("a", 0, 10)];
        assert!(check(&lost, &[]).unwrap_err().contains("gone"));
        let twice = vec![Created::Unknown { tag: "x".into() }];
        assert!(check(&twice, &[child("x", 0, 10), child("x", 1, 20)]).unwrap_err().contains("twice"));
        assert!(check(&[], &[child("y", 0, 10)]).unwrap_err().contains("no create attempted"));
    }
}
