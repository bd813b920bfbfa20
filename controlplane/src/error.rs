//! Errors of the control plane API and their gRPC status codes.
//!
//! Every refused request maps to one [`ApiError`]; `tonic::Status::from(ApiError)` gives the
//! code documented in `proto/sluice/v1/common.proto`. Validation problems are collected as
//! [`Violations`] (all of them, not only the first) and become INVALID_ARGUMENT with a message
//! naming each field and `google.rpc.BadRequest` details, built with `tonic-types`.

use core::fmt;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// At most this many violations are kept per request (the rest are counted): a request with
/// 4096 bad backends gets a useful answer, not a megabyte of details.
pub const MAX_REPORTED_VIOLATIONS: usize = 100;
/// At most this many violations are spelled out in the status message; the BadRequest details
/// carry all reported ones.
const MAX_VIOLATIONS_IN_MESSAGE: usize = 5;

/// One invalid field: `field` is its path in the request, e.g. `service.backends[2].weight`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// The invalid fields of one request, in the order they were found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Violations {
    reported: Vec<FieldViolation>,
    /// Violations found beyond [`MAX_REPORTED_VIOLATIONS`].
    omitted: usize,
}

impl Violations {
    pub fn new() -> Violations {
        Violations::default()
    }

    /// A single violation.
    pub fn one(field: impl Into<String>, description: impl fmt::Display) -> Violations {
        let mut violations = Violations::new();
        violations.push(field, description);
        violations
    }

    pub fn push(&mut self, field: impl Into<String>, description: impl fmt::Display) {
        if self.reported.len() < MAX_REPORTED_VIOLATIONS {
            self.reported.push(FieldViolation {
                field: field.into(),
                description: description.to_string(),
            });
        } else {
            self.omitted += 1;
        }
    }

    /// Appends `other`'s violations.
    pub fn extend(&mut self, other: Violations) {
        self.omitted += other.omitted;
        for violation in other.reported {
            self.push(violation.field, violation.description);
        }
    }

    /// Prefixes every field path with `prefix.` (e.g. `requests[3]`).
    pub fn prefixed(mut self, prefix: &str) -> Violations {
        for violation in &mut self.reported {
            violation.field = format!("{prefix}.{}", violation.field);
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.reported.is_empty() && self.omitted == 0
    }

    /// The violations kept for reporting.
    pub fn violations(&self) -> &[FieldViolation] {
        &self.reported
    }

    /// How many violations were found in all.
    pub fn len(&self) -> usize {
        self.reported.len() + self.omitted
    }

    /// `Ok(value)` when nothing was found, the violations otherwise.
    pub fn into_result<T>(self, value: T) -> Result<T, Violations> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// INVALID_ARGUMENT naming the fields, with `google.rpc.BadRequest` details.
    pub fn to_status(&self) -> Status {
        let details = ErrorDetails::with_bad_request(
            self.reported
                .iter()
                .map(|v| tonic_types::FieldViolation::new(&v.field, &v.description))
                .collect::<Vec<_>>(),
        );
        Status::with_error_details(Code::InvalidArgument, self.to_string(), details)
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.reported.len().min(MAX_VIOLATIONS_IN_MESSAGE);
        for (i, violation) in self.reported.iter().take(shown).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{violation}")?;
        }
        let more = self.len() - shown;
        if more > 0 {
            write!(f, "; and {more} more")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

/// Why the control plane refused a request. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// INVALID_ARGUMENT.
    #[error("{0}")]
    Invalid(Violations),
    /// NOT_FOUND.
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    /// ABORTED: optimistic concurrency failed.
    #[error(
        "{kind} {name:?} is at resource_version {actual}, not {expected}; read it again and retry"
    )]
    VersionMismatch {
        kind: &'static str,
        name: String,
        expected: u64,
        /// 0 when the object does not exist.
        actual: u64,
    },
    /// ALREADY_EXISTS.
    #[error("{0}")]
    AlreadyExists(String),
    /// FAILED_PRECONDITION: the change conflicts with other objects.
    #[error("{0}")]
    FailedPrecondition(String),
    /// RESOURCE_EXHAUSTED: a pool or a size limit is full.
    #[error("{0}")]
    ResourceExhausted(String),
}

impl ApiError {
    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            ApiError::Invalid(_) => Code::InvalidArgument,
            ApiError::NotFound { .. } => Code::NotFound,
            ApiError::VersionMismatch { .. } => Code::Aborted,
            ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::ResourceExhausted(_) => Code::ResourceExhausted,
        }
    }

    pub(crate) fn not_found(kind: &'static str, name: impl Into<String>) -> ApiError {
        ApiError::NotFound {
            kind,
            name: name.into(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, description: impl fmt::Display) -> ApiError {
        ApiError::Invalid(Violations::one(field, description))
    }
}

impl From<Violations> for ApiError {
    fn from(violations: Violations) -> ApiError {
        ApiError::Invalid(violations)
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Status {
        match &error {
            ApiError::Invalid(violations) => violations.to_status(),
            _ => Status::new(error.code(), error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_fields_and_carries_bad_request() {
        let mut violations = Violations::new();
        violations.push(
            "service.backends[2].weight",
            "must be between 0 and 1000000",
        );
        violations.push("service.vip", "\"x\" is not an IPv4 or IPv6 address");
        let status = Status::from(ApiError::from(violations));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "service.backends[2].weight: must be between 0 and 1000000; \
             service.vip: \"x\" is not an IPv4 or IPv6 address"
        );
        let bad_request = status
            .get_details_bad_request()
            .expect("BadRequest details");
        let fields: Vec<&str> = bad_request
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["service.backends[2].weight", "service.vip"]);
    }

    #[test]
    fn many_violations_are_capped_and_counted() {
        let mut violations = Violations::new();
        for i in 0..4096 {
            violations.push(format!("service.backends[{i}].port"), "must not be 0");
        }
        assert_eq!(violations.len(), 4096);
        assert_eq!(violations.violations().len(), MAX_REPORTED_VIOLATIONS);
        let status = violations.to_status();
        assert!(
            status.message().ends_with("; and 4091 more"),
            "{}",
            status.message()
        );
        assert_eq!(
            status
                .get_details_bad_request()
                .unwrap()
                .field_violations
                .len(),
            MAX_REPORTED_VIOLATIONS
        );
    }

    #[test]
    fn other_errors_map_to_their_codes() {
        let cases = [
            (ApiError::not_found("service", "web"), Code::NotFound),
            (
                ApiError::VersionMismatch {
                    kind: "service",
                    name: "web".into(),
                    expected: 3,
                    actual: 5,
                },
                Code::Aborted,
            ),
            (ApiError::AlreadyExists("taken".into()), Code::AlreadyExists),
            (
                ApiError::FailedPrecondition("in use".into()),
                Code::FailedPrecondition,
            ),
            (
                ApiError::ResourceExhausted("full".into()),
                Code::ResourceExhausted,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
        assert_eq!(
            ApiError::not_found("service", "web").to_string(),
            "service \"web\" not found"
        );
    }
}
