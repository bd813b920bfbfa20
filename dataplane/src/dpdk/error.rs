use std::ffi::CStr;

/// An error from DPDK, with the failing call, its errno and `rte_strerror`'s text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    #[error("{call} failed: {message} (errno {errno})")]
    Call {
        call: &'static str,
        errno: i32,
        message: String,
    },
    #[error("EAL is already initialised in this process")]
    AlreadyInitialised,
    #[error("EAL is not initialised")]
    NotInitialised,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("port {0:?} not found")]
    PortNotFound(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0} still in use; release it first")]
    Busy(String),
}

pub type Result<T> = std::result::Result<T, DpdkError>;

impl DpdkError {
    /// Builds an error from a DPDK return code; negative codes are `-errno`, otherwise
    /// `rte_errno` holds the reason.
    pub(crate) fn from_ret(call: &'static str, ret: i32) -> DpdkError {
        let errno = if ret < 0 { -ret } else { last_errno() };
        DpdkError::Call {
            call,
            errno,
            message: strerror(errno),
        }
    }

    /// Builds an error from `rte_errno` (for calls that return NULL on failure).
    pub(crate) fn from_errno(call: &'static str) -> DpdkError {
        let errno = last_errno();
        DpdkError::Call {
            call,
            errno,
            message: strerror(errno),
        }
    }
}

pub(crate) fn last_errno() -> i32 {
    // SAFETY: reads the calling thread's rte_errno; no preconditions.
    unsafe { dpdk_sys::sluice_errno() }
}

pub(crate) fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string
    // that stays valid until the next call on this thread; we copy it at once.
    unsafe {
        let p = dpdk_sys::rte_strerror(errno);
        if p.is_null() {
            format!("errno {errno}")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Turns a DPDK status return (0 = ok, negative = -errno) into a `Result`.
pub(crate) fn check(call: &'static str, ret: i32) -> Result<()> {
    if ret < 0 {
        Err(DpdkError::from_ret(call, ret))
    } else {
        Ok(())
    }
}
