//! Path validation (ZooKeeper's `PathUtils.validatePath`) and the map keys the tree
//! stores nodes under.

use corral_proto::ErrorCode;

/// The paths ZooKeeper refuses to delete (`DataTree.isSpecialPath`).
pub(crate) const SPECIAL_PATHS: [&str; 4] = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];

/// Checks a path exactly as ZooKeeper's `PathUtils.validatePath` does: absolute, no
/// trailing `/` (except the root), no empty, `.` or `..` segment, and none of the
/// characters ZooKeeper forbids. Java checks UTF-16 code units, so every character
/// outside the Basic Multilingual Plane (encoded as surrogates, \ud800-\udfff) is
/// rejected too.
pub fn validate_path(path: &str) -> Result<(), ErrorCode> {
    if !path.starts_with('/') {
        return Err(ErrorCode::BadArguments);
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(ErrorCode::BadArguments);
    }
    if path[1..].split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return Err(ErrorCode::BadArguments);
    }
    if path.chars().any(|c| !char_allowed(c)) {
        return Err(ErrorCode::BadArguments);
    }
    Ok(())
}

/// Validation for a create: ZooKeeper's client checks `path + "1"` for sequential
/// modes, so `/a/` is a valid sequential prefix (it yields `/a/0000000000`).
pub fn validate_create_path(path: &str, sequential: bool) -> Result<(), ErrorCode> {
    if sequential {
        validate_path(&format!("{path}1"))
    } else {
        validate_path(path)
    }
}

fn char_allowed(c: char) -> bool {
    let u = c as u32;
    !(u == 0
        || (0x01..=0x1F).contains(&u)
        || (0x7F..=0x9F).contains(&u)
        || (0xD800..=0xF8FF).contains(&u)
        || (0xFFF0..=0xFFFF).contains(&u)
        || u > 0xFFFF)
}

/// Splits a path (or a sequential-create prefix such as `/a/`) into its parent path
/// and last segment. The root's parent is the root, as in ZooKeeper where both
/// `""` and `"/"` name the root.
pub(crate) fn split_parent(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

/// Depth of a valid path: 0 for the root, else its number of segments.
pub(crate) fn depth(path: &str) -> u32 {
    if path == "/" {
        0
    } else {
        path.bytes().filter(|b| *b == b'/').count() as u32
    }
}

/// The key a node is stored under: its depth (big-endian) followed by its path.
///
/// Ordering by depth first makes the children of any node one contiguous, name-sorted
/// range of the map (the keys at depth d+1 starting with `parent/`), so the tree
/// needs no per-node child sets, and a snapshot lists every parent before its children.
pub(crate) fn node_key(path: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + path.len());
    key.extend_from_slice(&depth(path).to_be_bytes());
    key.extend_from_slice(path.as_bytes());
    key
}

/// The key prefix shared by exactly the children of `path`.
pub(crate) fn children_key_prefix(path: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(5 + path.len());
    key.extend_from_slice(&(depth(path) + 1).to_be_bytes());
    key.extend_from_slice(path.as_bytes());
    if path != "/" {
        key.push(b'/');
    }
    key
}

/// The path stored in a key made by [`node_key`].
pub(crate) fn key_path(key: &[u8]) -> &str {
    std::str::from_utf8(key.get(4..).unwrap_or_default()).unwrap_or_default()
}

/// The parent path as ZooKeeper names it in NodeChildrenChanged events.
pub(crate) fn parent_of(path: &str) -> &str {
    split_parent(path).0
}
