//! Invalid fields of a request, reported all at once (like `controlplane::error`): each names
//! its field path, e.g. `table.routes[2].rules[0].matches[1].path.value`, and the set becomes
//! INVALID_ARGUMENT with `google.rpc.BadRequest` details.

use core::fmt;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// At most this many violations are kept; the rest are only counted.
const MAX_REPORTED: usize = 100;
/// At most this many are spelled out in the status message (the details carry all kept).
const MAX_IN_MESSAGE: usize = 5;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Violations {
    reported: Vec<FieldViolation>,
    omitted: usize,
}

impl Violations {
    pub fn one(field: impl Into<String>, description: impl fmt::Display) -> Violations {
        let mut v = Violations::default();
        v.push(field, description);
        v
    }

    pub fn push(&mut self, field: impl Into<String>, description: impl fmt::Display) {
        if self.reported.len() < MAX_REPORTED {
            self.reported.push(FieldViolation {
                field: field.into(),
                description: description.to_string(),
            });
        } else {
            self.omitted += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.reported.is_empty() && self.omitted == 0
    }

    pub fn violations(&self) -> &[FieldViolation] {
        &self.reported
    }

    /// INVALID_ARGUMENT naming the fields, with BadRequest details.
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
        for (i, v) in self.reported.iter().take(MAX_IN_MESSAGE).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        let more = self.reported.len().saturating_sub(MAX_IN_MESSAGE) + self.omitted;
        if more > 0 {
            write!(f, " (and {more} more)")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}
