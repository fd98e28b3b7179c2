//! Client-side path validation, ZooKeeper's `PathUtils.validatePath`: a
//! malformed path is rejected before it costs a round trip, with the same rules
//! the server enforces.

use crate::error::Error;

/// Checks `path` as ZooKeeper's client does. A sequential create may end in
/// `/` (the server appends the counter to an empty last name).
pub(crate) fn validate(path: &str, sequential: bool) -> Result<(), Error> {
    let bad = |why: &str| Err(Error::InvalidArgument(format!("invalid path {path:?}: {why}")));
    if path.is_empty() {
        return bad("empty");
    }
    if !path.starts_with('/') {
        return bad("must start with /");
    }
    if path.len() == 1 {
        return Ok(());
    }
    // A sequential create names only a prefix, so "/queue/" is a fine prefix.
    let checked = if sequential { path.strip_suffix('/').unwrap_or(path) } else { path };
    if checked.ends_with('/') {
        return bad("must not end with /");
    }
    for c in checked.chars() {
        let forbidden = c == '\0'
            || ('\u{1}'..='\u{1f}').contains(&c)
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || ('\u{f000}'..='\u{f8ff}').contains(&c)
            || ('\u{fff0}'..='\u{ffff}').contains(&c);
        if forbidden {
            return bad(&format!("contains the forbidden character {:?}", c));
        }
    }
    for segment in checked[1..].split('/') {
        match segment {
            "" => return bad("empty segment"),
            "." | ".." => return bad("relative segments are not allowed"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_zookeeper_paths() {
        for p in ["/", "/a", "/a/b", "/a.b/..c", "/zookeeper", "/ünïcode"] {
            assert!(validate(p, false).is_ok(), "{p}");
        }
        assert!(validate("/queue/", true).is_ok());
        assert!(validate("/queue/item-", true).is_ok());
    }

    #[test]
    fn rejects_malformed_paths() {
        for p in ["", "a", "/a/", "//", "/a//b", "/a/./b", "/a/..", "/a\0b", "/a\u{1}", "/a\u{7f}"] {
            let e = validate(p, false).expect_err(p);
            assert!(e.is_definite());
            assert!(e.to_string().starts_with("BadArguments"), "{e}");
        }
        assert!(validate("/queue//", true).is_err());
    }
}
