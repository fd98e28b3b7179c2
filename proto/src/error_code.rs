//! ZooKeeper's error codes (`KeeperException.Code`), with the exact numbers the
//! ZooKeeper wire protocol carries, shared by both of Corral's APIs.

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $num:expr ),+ $(,)?) => {
        /// A ZooKeeper error code. `Ok` is included because ZooKeeper's multi results
        /// carry it for the operations before a failing one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[repr(i32)]
        pub enum ErrorCode {
            $( $(#[$doc])* $name = $num ),+
        }

        impl ErrorCode {
            /// Every code, in declaration order (used by round-trip tests and docs).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),+];

            /// The code for a number received from the wire, if ZooKeeper defines it.
            pub fn from_i32(n: i32) -> Option<ErrorCode> {
                match n {
                    $( $num => Some(ErrorCode::$name), )+
                    _ => None,
                }
            }

            /// ZooKeeper's name for the code, as its Java client prints it.
            pub fn name(self) -> &'static str {
                match self {
                    $( ErrorCode::$name => stringify!($name), )+
                }
            }
        }
    };
}

error_codes! {
    Ok = 0,
    SystemError = -1,
    RuntimeInconsistency = -2,
    DataInconsistency = -3,
    ConnectionLoss = -4,
    MarshallingError = -5,
    Unimplemented = -6,
    OperationTimeout = -7,
    BadArguments = -8,
    UnknownSession = -12,
    NewConfigNoQuorum = -13,
    ReconfigInProgress = -14,
    ApiError = -100,
    NoNode = -101,
    NoAuth = -102,
    BadVersion = -103,
    NoChildrenForEphemerals = -108,
    NodeExists = -110,
    NotEmpty = -111,
    SessionExpired = -112,
    InvalidCallback = -113,
    InvalidAcl = -114,
    AuthFailed = -115,
    SessionMoved = -118,
    NotReadOnly = -119,
    EphemeralOnLocalSession = -120,
    NoWatcher = -121,
    RequestTimeout = -122,
    ReconfigDisabled = -123,
    SessionClosedRequireSaslAuth = -124,
    QuotaExceeded = -125,
    Throttled = -127,
}

impl ErrorCode {
    /// The number carried on the wire.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// True when the error proves the operation had no effect on the server.
    /// ConnectionLoss, OperationTimeout and RequestTimeout do not: the write may
    /// have committed before the reply was lost.
    pub fn is_definite(self) -> bool {
        !matches!(
            self,
            ErrorCode::ConnectionLoss | ErrorCode::OperationTimeout | ErrorCode::RequestTimeout
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for ErrorCode {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_number() {
        for &c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_i32(c.code()), Some(c));
        }
        assert_eq!(ErrorCode::from_i32(-9999), None);
        assert_eq!(ErrorCode::NoNode.code(), -101);
        assert_eq!(ErrorCode::NoNode.to_string(), "NoNode");
    }
}
