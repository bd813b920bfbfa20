//! What can go wrong in a `sluicectl` run, and how it is shown on stderr. Every error exits
//! with code 1 (command-line usage errors, reported by clap, exit with 2).

use std::fmt;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// A failed `sluicectl` run.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments or input files, found before contacting the daemon.
    Input(String),
    /// The daemon could not be reached.
    Connect {
        /// The server address as given (`unix:///run/sluice/sluiced.sock`).
        server: String,
        /// The cause chain, outermost first.
        detail: String,
    },
    /// The daemon answered a call with an error status.
    Rpc {
        /// The server address as given.
        server: String,
        /// The full method name (`sluice.v1.Services/ApplyService`).
        method: &'static str,
        /// The status it answered.
        status: Box<Status>,
    },
    /// The result could not be written out.
    Output(String),
}

impl CliError {
    /// A gRPC error status of `method` from `server`.
    pub fn rpc(server: &str, method: &'static str, status: Status) -> CliError {
        CliError::Rpc {
            server: server.to_owned(),
            method,
            status: Box::new(status),
        }
    }
}

/// The canonical upper-case name of a gRPC status code, as in the gRPC specification.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Joins an error and its sources: `transport error: connection refused`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The text of an error status: `INVALID_ARGUMENT: <message>`, then one indented line per
/// `google.rpc.BadRequest` field violation when the message does not already say exactly
/// that one violation, then a hint for codes that need one.
pub fn describe_status(status: &Status, server: &str, method: &str) -> String {
    let code = code_name(status.code());
    let message = status.message().trim();
    let mut text = if message.is_empty() {
        code.to_owned()
    } else {
        format!("{code}: {message}")
    };
    let violations = status
        .get_details_bad_request()
        .map(|bad_request| bad_request.field_violations)
        .unwrap_or_default();
    let message_is_the_one_violation = matches!(
        violations.as_slice(),
        [only] if message == format!("{}: {}", only.field, only.description)
    );
    if !violations.is_empty() && !message_is_the_one_violation {
        for violation in &violations {
            text.push_str(&format!(
                "\n  {}: {}",
                violation.field, violation.description
            ));
        }
    }
    let hint = match status.code() {
        Code::Unimplemented => Some(format!(
            "the server at {server} does not implement {method}"
        )),
        Code::Unavailable | Code::DeadlineExceeded => {
            let cause = std::error::Error::source(status)
                .map(error_chain)
                .filter(|cause| !message.contains(cause.as_str()));
            Some(match cause {
                Some(cause) => format!("while calling {method} on {server}: {cause}"),
                None => format!("while calling {method} on {server}"),
            })
        }
        Code::Unauthenticated => Some(format!(
            "{server} wants a bearer token: pass --token or set SLUICE_TOKEN"
        )),
        Code::Aborted => {
            Some("the object changed since it was read: read it again and retry".to_owned())
        }
        _ => None,
    };
    if let Some(hint) = hint {
        text.push_str(&format!("\n  ({hint})"));
    }
    text
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Input(message) | CliError::Output(message) => f.write_str(message),
            CliError::Connect { server, detail } => {
                write!(f, "cannot reach sluiced at {server}: {detail}")
            }
            CliError::Rpc {
                server,
                method,
                status,
            } => f.write_str(&describe_status(status, server, method)),
        }
    }
}

impl std::error::Error for CliError {}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, FieldViolation};

    const SERVER: &str = "unix:///run/sluice/sluiced.sock";
    const METHOD: &str = "sluice.v1.Services/ApplyService";

    #[test]
    fn one_violation_in_the_message_is_not_repeated() {
        let field = "service.backends[2].weight";
        let description = "must be between 0 and 1000000";
        let status = Status::with_error_details(
            Code::InvalidArgument,
            format!("{field}: {description}"),
            ErrorDetails::with_bad_request(vec![FieldViolation::new(field, description)]),
        );
        assert_eq!(
            describe_status(&status, SERVER, METHOD),
            "INVALID_ARGUMENT: service.backends[2].weight: must be between 0 and 1000000"
        );
    }

    #[test]
    fn every_violation_is_listed_when_the_message_summarises() {
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "service.port: must be between 1 and 65535; and 1 more",
            ErrorDetails::with_bad_request(vec![
                FieldViolation::new("service.port", "must be between 1 and 65535"),
                FieldViolation::new("service.vip", "not an IP address"),
            ]),
        );
        assert_eq!(
            describe_status(&status, SERVER, METHOD),
            "INVALID_ARGUMENT: service.port: must be between 1 and 65535; and 1 more\n  \
             service.port: must be between 1 and 65535\n  service.vip: not an IP address"
        );
    }

    #[test]
    fn unimplemented_names_the_method_and_server() {
        let status = Status::unimplemented("");
        let text = describe_status(&status, SERVER, "sluice.v1.Observability/ListConnections");
        assert_eq!(
            text,
            "UNIMPLEMENTED\n  (the server at unix:///run/sluice/sluiced.sock does not implement \
             sluice.v1.Observability/ListConnections)"
        );
    }

    #[test]
    fn plain_statuses_show_code_and_message() {
        let status = Status::not_found("service web not found");
        assert_eq!(
            describe_status(&status, SERVER, METHOD),
            "NOT_FOUND: service web not found"
        );
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
    }

    #[test]
    fn connect_errors_name_the_server() {
        let error = CliError::Connect {
            server: SERVER.into(),
            detail: "No such file or directory (os error 2)".into(),
        };
        assert_eq!(
            error.to_string(),
            "cannot reach sluiced at unix:///run/sluice/sluiced.sock: No such file or \
             directory (os error 2)"
        );
    }
}
