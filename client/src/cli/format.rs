//! Pure formatting and parsing for the CLI: no I/O, so all of it is tested here.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use corral_client::{ClusterStatus, Membership, Stat};

/// `500ms`, `5s`, `1.5s`, `2m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit_secs) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 5s, 1m)"))?;
    let secs = value * unit_secs;
    // Zero would make every request fail at once; the client rejects it too,
    // but here the message can name the flag's value.
    if !secs.is_finite() || secs <= 0.0 || secs > 365.0 * 86_400.0 {
        return Err(format!("{s:?} must be a positive duration of at most a year"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A time as zkCli prints it (Java's `Date.toString()`), in UTC since that is
/// the only zone that doesn't depend on the machine running the command.
/// Out-of-range values (a corrupt stat) are shown as the raw milliseconds.
pub fn zk_time(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%a %b %d %H:%M:%S UTC %Y").to_string(),
        None => format!("{ms} ms since the epoch"),
    }
}

/// A Stat in zkCli's format, one `name = value` per line. Zxids and the
/// ephemeral owner are hex like zkCli's (negative values as their 64-bit two's
/// complement, as Java's `Long.toHexString`).
pub fn stat(s: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\n\
         ctime = {}\n\
         mZxid = 0x{:x}\n\
         mtime = {}\n\
         pZxid = 0x{:x}\n\
         cversion = {}\n\
         dataVersion = {}\n\
         aclVersion = {}\n\
         ephemeralOwner = 0x{:x}\n\
         dataLength = {}\n\
         numChildren = {}\n",
        s.czxid,
        zk_time(s.ctime),
        s.mzxid,
        zk_time(s.mtime),
        s.pzxid,
        s.cversion,
        s.version,
        s.aversion,
        s.ephemeral_owner,
        s.data_length,
        s.num_children,
    )
}

/// The full path of `parent`'s child `name`.
pub fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// `root` and its descendants, depth-first, each node followed by its subtree.
/// `children` maps a path to its children's full paths, already sorted; a path
/// missing from it is a leaf (or vanished while the tree was listed).
pub fn depth_first(root: &str, children: &HashMap<String, Vec<String>>) -> Vec<String> {
    let mut order = Vec::new();
    let mut stack = vec![root.to_string()];
    while let Some(path) = stack.pop() {
        if let Some(kids) = children.get(&path) {
            // Reversed onto the stack so the smallest sibling comes out first.
            stack.extend(kids.iter().rev().cloned());
        }
        order.push(path);
    }
    order
}

/// `corral status`: a summary of the answering member's view, then one row
/// per member.
pub fn status_table(s: &ClusterStatus) -> String {
    let describe = |id: u64| match s.members.iter().find(|m| m.id == id) {
        Some(m) => format!("{id} ({})", m.addr),
        None => id.to_string(),
    };
    let summary = [
        ("Answered by", format!("{}, {}", describe(s.member_id), s.role)),
        ("Leader", s.leader_id.map_or_else(|| "none (an election is under way)".to_string(), describe)),
        ("Term", s.term.to_string()),
        ("Commit zxid", format!("0x{:x}", s.commit_zxid)),
        ("Applied zxid", format!("0x{:x}", s.applied_zxid)),
        ("Last log index", s.last_log_index.to_string()),
        ("Znodes", s.znode_count.to_string()),
        ("Sessions", s.session_count.to_string()),
    ];
    let mut out = String::new();
    let key_width = summary.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in &summary {
        let _ = writeln!(out, "{key:<key_width$}  {value}");
    }
    out.push('\n');

    out.push_str(&members_table(s));
    out
}

/// The members as `s` lists them, by id: address, role and whether each votes.
pub fn members_table(s: &ClusterStatus) -> String {
    let mut members = s.members.clone();
    members.sort_by_key(|m| m.id);
    let rows: Vec<[String; 4]> = members
        .iter()
        .map(|m| {
            let voter = if m.voter { "yes" } else { "no" };
            [m.id.to_string(), m.addr.clone(), m.role.to_string(), voter.to_string()]
        })
        .collect();
    table(["ID", "ADDRESS", "ROLE", "VOTER"], &rows)
}

/// The membership after `corral member add|remove`: its config zxid, then one row per member.
pub fn membership_table(m: &Membership) -> String {
    let voters = m.voters.iter().map(|(id, addr)| [id.to_string(), addr.clone(), "voter".to_string()]);
    let observers = m.observers.iter().map(|(id, addr)| [id.to_string(), addr.clone(), "observer".to_string()]);
    let rows: Vec<[String; 3]> = voters.chain(observers).collect();
    format!("Config zxid  0x{:x}\n\n{}", m.config_zxid, table(["ID", "ADDRESS", "ROLE"], &rows))
}

/// Left-aligned columns two spaces apart, the last one unpadded.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; N]| {
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}  ");
            }
        }
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_client::{MemberStatus, Role};

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "s", "0", "0ms", "-1s", "five", "1h", "NaN", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn times_look_like_javas_date_to_string() {
        assert_eq!(zk_time(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(zk_time(1_700_000_000_123), "Tue Nov 14 22:13:20 UTC 2023");
        assert_eq!(zk_time(i64::MAX), format!("{} ms since the epoch", i64::MAX));
    }

    #[test]
    fn stat_is_zkclis_format() {
        let s = Stat {
            czxid: 0x1a,
            mzxid: 0x2b,
            ctime: 0,
            mtime: 1_700_000_000_123,
            version: 3,
            cversion: 4,
            aversion: 5,
            ephemeral_owner: -2,
            data_length: 6,
            num_children: 7,
            pzxid: 0x3c,
        };
        assert_eq!(
            stat(&s),
            "cZxid = 0x1a\n\
             ctime = Thu Jan 01 00:00:00 UTC 1970\n\
             mZxid = 0x2b\n\
             mtime = Tue Nov 14 22:13:20 UTC 2023\n\
             pZxid = 0x3c\n\
             cversion = 4\n\
             dataVersion = 3\n\
             aclVersion = 5\n\
             ephemeralOwner = 0xfffffffffffffffe\n\
             dataLength = 6\n\
             numChildren = 7\n"
        );
        assert!(stat(&Stat::default()).contains("ephemeralOwner = 0x0\n"));
    }

    #[test]
    fn child_paths() {
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a", "b"), "/a/b");
    }

    #[test]
    fn depth_first_puts_each_subtree_after_its_root() {
        let tree: HashMap<String, Vec<String>> =
            [("/", vec!["/a", "/b"]), ("/a", vec!["/a/x", "/a/y"]), ("/a/x", vec!["/a/x/1"]), ("/b", vec![])]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
                .collect();
        assert_eq!(depth_first("/", &tree), ["/", "/a", "/a/x", "/a/x/1", "/a/y", "/b"]);
        assert_eq!(depth_first("/a/x", &tree), ["/a/x", "/a/x/1"]);
        assert_eq!(depth_first("/gone", &tree), ["/gone"]);
    }

    fn three_members() -> ClusterStatus {
        let member = |id: u64, role| MemberStatus { id, addr: format!("127.0.0.1:700{id}"), role, voter: id != 3 };
        ClusterStatus {
            member_id: 2,
            role: Role::Follower,
            leader_id: Some(1),
            term: 4,
            commit_zxid: 31,
            applied_zxid: 30,
            last_log_index: 31,
            // Out of order on purpose: the table sorts by id.
            members: vec![member(3, Role::Learner), member(1, Role::Leader), member(2, Role::Follower)],
            znode_count: 12,
            session_count: 1,
        }
    }

    #[test]
    fn membership_table() {
        let m = Membership {
            config_zxid: 0x2c00,
            voters: vec![(1, "127.0.0.1:7001".into()), (4, "10.0.0.4:7001".into())],
            observers: vec![(12, "127.0.0.1:7012".into())],
        };
        assert_eq!(
            super::membership_table(&m),
            "Config zxid  0x2c00\n\n\
             ID  ADDRESS         ROLE\n\
             1   127.0.0.1:7001  voter\n\
             4   10.0.0.4:7001   voter\n\
             12  127.0.0.1:7012  observer\n"
        );
    }

    #[test]
    fn status_table() {
        assert_eq!(
            super::status_table(&three_members()),
            "Answered by     2 (127.0.0.1:7002), follower\n\
             Leader          1 (127.0.0.1:7001)\n\
             Term            4\n\
             Commit zxid     0x1f\n\
             Applied zxid    0x1e\n\
             Last log index  31\n\
             Znodes          12\n\
             Sessions        1\n\
             \n\
             ID  ADDRESS         ROLE      VOTER\n\
             1   127.0.0.1:7001  leader    yes\n\
             2   127.0.0.1:7002  follower  yes\n\
             3   127.0.0.1:7003  learner   no\n"
        );
    }

    #[test]
    fn status_without_a_leader_says_so() {
        let s = ClusterStatus { leader_id: None, ..three_members() };
        assert!(super::status_table(&s).contains("Leader          none (an election is under way)\n"));
    }
}
