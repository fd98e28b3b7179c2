//! The client's one error type, and how a gRPC status becomes one.
//!
//! Every variant's `Display` starts with a ZooKeeper code name, so a caller can
//! print `Error: {err}` and get `Error: NoNode: /a` the way zkCli users expect.

use corral_proto::ErrorCode;

use crate::types::OpResult;

/// Everything a client call can fail with.
///
/// The question callers most often need answered is not *which* error but
/// *whether the operation may have happened*: see [`Error::is_definite`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The server refused the operation with a ZooKeeper error (NoNode,
    /// BadVersion, NoAuth, ...). Whether it proves the operation had no effect
    /// depends on the code ([`ErrorCode::is_definite`]).
    #[error("{code}: {message}")]
    Zk { code: ErrorCode, message: String },

    /// A `multi` was rejected as a whole: nothing was applied. `code` is the
    /// failing operation's code and `results` holds one entry per op, in
    /// ZooKeeper's convention (`Ok` before the failing op, the real code for it,
    /// `RuntimeInconsistency` after it), each as [`OpResult::Error`].
    #[error("{code}: multi failed at op {}", failed_index(.results))]
    Multi { code: ErrorCode, results: Vec<OpResult> },

    /// The request may have reached a member but no reply came back (the
    /// connection broke, or the member lost its way to the leader). A write in
    /// this state may or may not have been applied.
    #[error("ConnectionLoss: {0}")]
    ConnectionLoss(String),

    /// The client was built without any endpoint.
    #[error("BadArguments: no endpoints given")]
    NoEndpoints,

    /// The call was rejected before anything was sent (a malformed path or
    /// endpoint, inconsistent create options, ...).
    #[error("BadArguments: {0}")]
    InvalidArgument(String),

    /// No reply within the request timeout. Like [`Error::ConnectionLoss`], a
    /// write may have been applied.
    #[error("OperationTimeout: no reply within the request timeout")]
    Timeout,
}

fn failed_index(results: &[OpResult]) -> String {
    results
        .iter()
        .position(|r| match r {
            OpResult::Error { code } => {
                *code != ErrorCode::Ok && *code != ErrorCode::RuntimeInconsistency
            }
            _ => false,
        })
        .map_or_else(|| "?".to_string(), |i| i.to_string())
}

impl Error {
    /// The ZooKeeper code this error corresponds to, as a ZooKeeper client
    /// would report it. Client-side failures map to the codes ZooKeeper's own
    /// client uses for them: `ConnectionLoss`, `OperationTimeout`, and
    /// `BadArguments` for anything rejected before sending.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Zk { code, .. } | Error::Multi { code, .. } => *code,
            Error::ConnectionLoss(_) => ErrorCode::ConnectionLoss,
            Error::NoEndpoints | Error::InvalidArgument(_) => ErrorCode::BadArguments,
            Error::Timeout => ErrorCode::OperationTimeout,
        }
    }

    /// True when the error proves the operation had no effect on the server.
    ///
    /// False for [`Error::ConnectionLoss`], [`Error::Timeout`] and the
    /// server-side timeout codes: a write that ends that way may have been
    /// committed, so a history checker must treat it as unknown, and a recipe
    /// must look before retrying (e.g. search for its sequential node).
    pub fn is_definite(&self) -> bool {
        match self {
            Error::Zk { code, .. } => code.is_definite(),
            // A rejected multi is atomic: none of its ops were applied.
            Error::Multi { .. } => true,
            Error::NoEndpoints | Error::InvalidArgument(_) => true,
            Error::ConnectionLoss(_) | Error::Timeout => false,
        }
    }

    /// The message without the code name prefix (what the server said, or a
    /// description of the client-side failure).
    pub fn message(&self) -> String {
        match self {
            Error::Zk { message, .. } | Error::ConnectionLoss(message) => message.clone(),
            Error::InvalidArgument(message) => message.clone(),
            Error::Multi { results, .. } => format!("multi failed at op {}", failed_index(results)),
            Error::NoEndpoints => "no endpoints given".to_string(),
            Error::Timeout => "no reply within the request timeout".to_string(),
        }
    }

    pub(crate) fn zk(code: ErrorCode, message: impl Into<String>) -> Error {
        // A typed ConnectionLoss from a member (it lost its way to the leader
        // mid-request) is the same situation as losing our own connection, so
        // callers match one variant for both.
        if code == ErrorCode::ConnectionLoss {
            return Error::ConnectionLoss(message.into());
        }
        Error::Zk { code, message: message.into() }
    }
}

/// What a failed RPC means for the retry loop.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// The member answered with a ZooKeeper error. `leader_hint` is the member
    /// it suggests trying instead (empty when none).
    Zk { code: ErrorCode, message: String, leader_hint: String },
    /// A status without a typed detail: the transport or the member is in
    /// trouble, and the request may or may not have been processed.
    Transport(String),
    /// A status without a typed detail that still says something definite
    /// about the request (the member does not implement the call).
    Unsupported(String),
}

impl Failure {
    pub(crate) fn from_status(status: &tonic::Status) -> Failure {
        if let Some((code, detail)) = corral_proto::status::from_status(status) {
            return Failure::Zk { code, message: detail.message, leader_hint: detail.leader_hint };
        }
        match status.code() {
            // Only an untyped Unimplemented is reliable: it comes from tonic's
            // router before any handler ran, so the request had no effect.
            tonic::Code::Unimplemented => Failure::Unsupported(status.message().to_string()),
            code => Failure::Transport(format!("{code:?}: {}", status.message())),
        }
    }

    /// The error to hand back when this failure is final.
    pub(crate) fn into_error(self) -> Error {
        match self {
            Failure::Zk { code, message, .. } => Error::zk(code, message),
            Failure::Transport(message) => Error::ConnectionLoss(message),
            Failure::Unsupported(message) => Error::Zk { code: ErrorCode::Unimplemented, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_side_errors_map_to_zookeeper_codes() {
        assert_eq!(Error::ConnectionLoss("x".into()).code(), ErrorCode::ConnectionLoss);
        assert_eq!(Error::Timeout.code(), ErrorCode::OperationTimeout);
        assert_eq!(Error::NoEndpoints.code(), ErrorCode::BadArguments);
        assert_eq!(Error::InvalidArgument("p".into()).code(), ErrorCode::BadArguments);
        let e = Error::Zk { code: ErrorCode::NoNode, message: "/a".into() };
        assert_eq!(e.code(), ErrorCode::NoNode);
    }

    #[test]
    fn definite_versus_ambiguous() {
        // Ambiguous: the operation may have been applied.
        assert!(!Error::ConnectionLoss("reset".into()).is_definite());
        assert!(!Error::Timeout.is_definite());
        for code in [ErrorCode::OperationTimeout, ErrorCode::RequestTimeout] {
            assert!(!Error::Zk { code, message: String::new() }.is_definite(), "{code}");
        }
        // Definite: the server refused, or nothing was sent.
        for code in [
            ErrorCode::NoNode,
            ErrorCode::NodeExists,
            ErrorCode::BadVersion,
            ErrorCode::NotEmpty,
            ErrorCode::NoAuth,
            ErrorCode::SessionExpired,
        ] {
            assert!(Error::Zk { code, message: String::new() }.is_definite(), "{code}");
        }
        assert!(Error::NoEndpoints.is_definite());
        assert!(Error::InvalidArgument("bad path".into()).is_definite());
        let multi = Error::Multi {
            code: ErrorCode::BadVersion,
            results: vec![
                OpResult::Error { code: ErrorCode::Ok },
                OpResult::Error { code: ErrorCode::BadVersion },
            ],
        };
        assert!(multi.is_definite());
        assert_eq!(multi.code(), ErrorCode::BadVersion);
    }

    #[test]
    fn display_starts_with_the_code_name() {
        let e = Error::Zk { code: ErrorCode::NoNode, message: "/a".into() };
        assert_eq!(e.to_string(), "NoNode: /a");
        assert_eq!(e.message(), "/a");
        assert_eq!(Error::Timeout.to_string(), format!("OperationTimeout: {}", Error::Timeout.message()));
        let multi = Error::Multi {
            code: ErrorCode::NoNode,
            results: vec![
                OpResult::Error { code: ErrorCode::Ok },
                OpResult::Error { code: ErrorCode::NoNode },
                OpResult::Error { code: ErrorCode::RuntimeInconsistency },
            ],
        };
        assert_eq!(multi.to_string(), "NoNode: multi failed at op 1");
        for e in [
            Error::ConnectionLoss("gone".into()),
            Error::NoEndpoints,
            Error::InvalidArgument("x".into()),
            Error::Timeout,
            multi,
        ] {
            assert!(e.to_string().starts_with(e.code().name()), "{e}");
        }
    }

    #[test]
    fn typed_statuses_keep_their_code_and_hint() {
        let status = corral_proto::status::to_status_with_hint(
            ErrorCode::BadVersion,
            "/a",
            "10.0.0.1:7001".into(),
        );
        assert_eq!(
            Failure::from_status(&status),
            Failure::Zk {
                code: ErrorCode::BadVersion,
                message: "/a".into(),
                leader_hint: "10.0.0.1:7001".into()
            }
        );
        let e = Failure::from_status(&corral_proto::status::to_status(ErrorCode::NoNode, "/b"))
            .into_error();
        assert_eq!(e, Error::Zk { code: ErrorCode::NoNode, message: "/b".into() });
        assert!(e.is_definite());
    }

    #[test]
    fn a_typed_connection_loss_is_the_ambiguous_variant() {
        let status = corral_proto::status::to_status(ErrorCode::ConnectionLoss, "no leader");
        let e = Failure::from_status(&status).into_error();
        assert_eq!(e, Error::ConnectionLoss("no leader".into()));
        assert!(!e.is_definite());
    }

    #[test]
    fn untyped_statuses_are_transport_trouble() {
        for status in [
            tonic::Status::unavailable("tcp connect error"),
            tonic::Status::unknown("h2 protocol error"),
            tonic::Status::internal("stream reset"),
            tonic::Status::cancelled("Timeout expired"),
        ] {
            let f = Failure::from_status(&status);
            assert!(matches!(f, Failure::Transport(_)), "{f:?}");
            let e = f.into_error();
            assert_eq!(e.code(), ErrorCode::ConnectionLoss);
            assert!(!e.is_definite());
        }
        let e = Failure::from_status(&tonic::Status::unimplemented("no such method")).into_error();
        assert_eq!(e.code(), ErrorCode::Unimplemented);
        assert!(e.is_definite());
    }
}
