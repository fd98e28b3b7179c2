//! The one mapping between ZooKeeper errors and gRPC statuses. The server encodes
//! with [`to_status`]; the client decodes with [`from_status`] and gets the exact
//! code back, whatever gRPC code was chosen for it.

use prost::Message;

use crate::v1::ErrorDetail;
use crate::ErrorCode;

/// The gRPC code that best describes a ZooKeeper error (for generic gRPC tooling).
pub fn grpc_code(code: ErrorCode) -> tonic::Code {
    use tonic::Code;
    match code {
        ErrorCode::Ok => Code::Ok,
        ErrorCode::NoNode => Code::NotFound,
        ErrorCode::NodeExists => Code::AlreadyExists,
        ErrorCode::NoAuth | ErrorCode::InvalidAcl => Code::PermissionDenied,
        ErrorCode::AuthFailed => Code::Unauthenticated,
        ErrorCode::BadVersion
        | ErrorCode::NotEmpty
        | ErrorCode::NoChildrenForEphemerals
        | ErrorCode::SessionExpired
        | ErrorCode::SessionMoved
        | ErrorCode::UnknownSession
        | ErrorCode::ReconfigInProgress
        | ErrorCode::NewConfigNoQuorum => Code::FailedPrecondition,
        ErrorCode::BadArguments | ErrorCode::MarshallingError => Code::InvalidArgument,
        ErrorCode::Unimplemented => Code::Unimplemented,
        ErrorCode::OperationTimeout | ErrorCode::RequestTimeout => Code::DeadlineExceeded,
        ErrorCode::ConnectionLoss => Code::Unavailable,
        ErrorCode::QuotaExceeded | ErrorCode::Throttled => Code::ResourceExhausted,
        _ => Code::Internal,
    }
}

/// Encodes a ZooKeeper error as a gRPC status with the typed code in `details`.
pub fn to_status(code: ErrorCode, message: impl Into<String>) -> tonic::Status {
    to_status_with_hint(code, message, String::new())
}

/// Like [`to_status`], with the address of the member the client should try instead.
pub fn to_status_with_hint(
    code: ErrorCode,
    message: impl Into<String>,
    leader_hint: String,
) -> tonic::Status {
    let message = message.into();
    let detail = ErrorDetail { code: code.code(), message: message.clone(), leader_hint };
    tonic::Status::with_details(
        grpc_code(code),
        format!("{}: {}", code.name(), message),
        detail.encode_to_vec().into(),
    )
}

/// The ZooKeeper error inside a status produced by [`to_status`], if there is one.
pub fn from_status(status: &tonic::Status) -> Option<(ErrorCode, ErrorDetail)> {
    let details = status.details();
    if details.is_empty() {
        return None;
    }
    let detail = ErrorDetail::decode(details).ok()?;
    let code = ErrorCode::from_i32(detail.code)?;
    Some((code, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_a_status_round_trip() {
        for &code in ErrorCode::ALL {
            let status = to_status(code, "why");
            let (back, detail) = from_status(&status).expect("typed detail");
            assert_eq!(back, code);
            assert_eq!(detail.message, "why");
        }
        assert!(from_status(&tonic::Status::unavailable("down")).is_none());
    }
}
