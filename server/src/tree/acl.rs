//! ACLs as ZooKeeper checks them: `PrepRequestProcessor.fixupACL`,
//! `ZooKeeperServer.checkACL`, and the `digest` and `ip` authentication providers.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::sync::Arc;

use base64::Engine;
use corral_proto::ErrorCode;
use sha1::Digest;

use super::txn::{Acl, Id};

/// `user:base64(sha1(user:password))`, as ZooKeeper's
/// `DigestAuthenticationProvider.generateDigest`: the user is everything before the
/// first `:`, the hash covers the whole `user:password` string.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or_default();
    let hash = sha1::Sha1::digest(user_password.as_bytes());
    format!("{}:{}", user, base64::engine::general_purpose::STANDARD.encode(hash))
}

/// The server-side authentication providers ZooKeeper registers by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Digest,
    Ip,
}

impl Provider {
    fn for_scheme(scheme: &str) -> Option<Provider> {
        match scheme {
            "digest" => Some(Provider::Digest),
            "ip" => Some(Provider::Ip),
            _ => None,
        }
    }

    /// Whether an identity of this scheme counts for the `auth` ACL scheme
    /// (`isAuthenticated`): digest yes, ip no.
    fn is_authenticated(self) -> bool {
        matches!(self, Provider::Digest)
    }

    fn is_valid(self, id: &str) -> bool {
        match self {
            // Java's `id.split(":").length == 2` (trailing empty strings dropped).
            Provider::Digest => java_split_len(id, ':') == 2,
            Provider::Ip => parse_ip_acl(id).is_some(),
        }
    }

    fn matches(self, caller_id: &str, acl_id: &str) -> bool {
        match self {
            Provider::Digest => caller_id == acl_id,
            Provider::Ip => ip_matches(caller_id, acl_id),
        }
    }
}

/// The number of parts Java's `String.split(regex)` returns for a one-char separator.
fn java_split_len(s: &str, sep: char) -> usize {
    let mut parts: Vec<&str> = s.split(sep).collect();
    if s.is_empty() {
        return 1;
    }
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts.len()
}

/// ZooKeeper's `fixupACL`: removes duplicates, rejects an empty list, expands `auth`
/// to the caller's authenticated identities, and checks every other id is valid for
/// its scheme. Any failure is `InvalidAcl`.
pub(crate) fn fixup_acl(acls: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    let mut unique: Vec<&Acl> = Vec::with_capacity(acls.len());
    for a in acls {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out = Vec::with_capacity(unique.len());
    for a in unique {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            out.push(a.clone());
        } else if a.id.scheme == "auth" {
            let mut any = false;
            for caller in auth {
                if Provider::for_scheme(&caller.scheme).is_some_and(Provider::is_authenticated) {
                    any = true;
                    out.push(Acl { perms: a.perms, id: caller.clone() });
                }
            }
            if !any {
                return Err(ErrorCode::InvalidAcl);
            }
        } else {
            match Provider::for_scheme(&a.id.scheme) {
                Some(p) if p.is_valid(&a.id.id) => out.push(a.clone()),
                _ => return Err(ErrorCode::InvalidAcl),
            }
        }
    }
    Ok(out)
}

/// ZooKeeper's `checkACL`: allowed if the list is empty, or an entry granting `perm`
/// is `world:anyone` or matches one of the caller's identities.
pub(crate) fn check_acl(acl: &[Acl], perm: i32, auth: &[Id]) -> Result<(), ErrorCode> {
    if acl.is_empty() {
        return Ok(());
    }
    for a in acl {
        if a.perms & perm == 0 {
            continue;
        }
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return Ok(());
        }
        if let Some(p) = Provider::for_scheme(&a.id.scheme) {
            if auth.iter().any(|c| c.scheme == a.id.scheme && p.matches(&c.id, &a.id.id)) {
                return Ok(());
            }
        }
    }
    Err(ErrorCode::NoAuth)
}

/// An address as bytes, as ZooKeeper's `IPAuthenticationProvider.addr2Bytes`: IPv6 if
/// it contains `:`, else four dot-separated integers 0-255 (Java `parseInt` rules:
/// optional sign, leading zeros allowed).
fn addr_bytes(addr: &str) -> Option<Vec<u8>> {
    if addr.contains(':') {
        return addr.parse::<Ipv6Addr>().ok().map(|a| a.octets().to_vec());
    }
    let parts: Vec<&str> = addr.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut out = Vec::with_capacity(4);
    for p in parts {
        let v = java_parse_int(p)?;
        out.push(u8::try_from(v).ok()?);
    }
    Some(out)
}

fn java_parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || digits.len() > 11 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    let v = if s.starts_with('-') { -v } else { v };
    i32::try_from(v).ok().map(i64::from)
}

/// An ip ACL id: address bytes and prefix length in bits.
fn parse_ip_acl(id: &str) -> Option<(Vec<u8>, usize)> {
    let (addr, bits) = match id.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (id, None),
    };
    let bytes = addr_bytes(addr)?;
    let max = bytes.len() * 8;
    let bits = match bits {
        None => max,
        Some(b) => {
            let b = java_parse_int(b)?;
            if b < 0 || b as usize > max {
                return None;
            }
            b as usize
        }
    };
    Some((bytes, bits))
}

fn mask(bytes: &mut [u8], bits: usize) {
    for (i, b) in bytes.iter_mut().enumerate() {
        let start = i * 8;
        if start >= bits {
            *b = 0;
        } else if bits - start < 8 {
            *b &= 0xFFu8 << (8 - (bits - start));
        }
    }
}

fn ip_matches(caller: &str, acl_id: &str) -> bool {
    let Some((mut acl_addr, bits)) = parse_ip_acl(acl_id) else {
        return false;
    };
    let Some(mut remote) = addr_bytes(caller) else {
        return false;
    };
    if remote.len() != acl_addr.len() {
        return false;
    }
    mask(&mut acl_addr, bits);
    mask(&mut remote, bits);
    remote == acl_addr
}

/// Interned ACL lists: nodes with equal ACLs share one allocation, as ZooKeeper's
/// `ReferenceCountedACLCache`. Lists no node uses any more are dropped lazily.
#[derive(Debug, Clone, Default)]
pub(crate) struct AclCache {
    lists: BTreeSet<Arc<[Acl]>>,
    purge_at: usize,
}

impl AclCache {
    pub fn intern(&mut self, acl: &[Acl]) -> Arc<[Acl]> {
        if let Some(shared) = self.lists.get(acl) {
            return shared.clone();
        }
        if self.lists.len() >= self.purge_at {
            self.lists.retain(|a| Arc::strong_count(a) > 1);
            self.purge_at = (self.lists.len() * 2).max(64);
        }
        let shared: Arc<[Acl]> = acl.into();
        self.lists.insert(shared.clone());
        shared
    }
}
