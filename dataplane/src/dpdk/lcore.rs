//! Running closures on worker lcores. A panic inside a worker is caught at the FFI boundary
//! (unwinding into C is undefined behaviour) and reported by [`LcoreJob::join`].

use std::any::Any;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::eal::Eal;
use super::error::{check, DpdkError, Result};

/// A panic caught on an lcore, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("worker on lcore {lcore} panicked: {message}")]
pub struct WorkerPanic {
    pub lcore: u32,
    pub message: String,
}

/// A shared "please stop" flag that polling loops check once per iteration.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn new() -> StopFlag {
        StopFlag::default()
    }

    #[inline]
    pub fn should_stop(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }
}

type Job<R> = Box<dyn FnOnce() -> R + Send>;

struct Slot<R> {
    job: Option<Job<R>>,
    result: Option<std::result::Result<R, String>>,
}

/// A closure running on a worker lcore; join it to get its result.
#[derive(Debug)]
#[must_use = "a launched job must be joined"]
pub struct LcoreJob<R: Send + 'static> {
    lcore: u32,
    slot: *mut Slot<R>,
    joined: bool,
}

// SAFETY: the slot is only touched by the lcore until rte_eal_wait_lcore returns, then only by
// the owner of this handle; R is Send.
unsafe impl<R: Send + 'static> Send for LcoreJob<R> {}

impl<R: Send + 'static> std::fmt::Debug for Slot<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

/// Runs `f` on worker lcore `lcore` (which must be enabled, not the main lcore, and idle).
pub fn launch<F, R>(_eal: &Eal, lcore: u32, f: F) -> Result<LcoreJob<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let slot = Box::into_raw(Box::new(Slot::<R> {
        job: Some(Box::new(f)),
        result: None,
    }));
    // SAFETY: `trampoline::<R>` matches lcore_function_t; `slot` stays valid until joined
    // (LcoreJob owns it and waits in join/drop before freeing).
    let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline::<R>), slot.cast(), lcore) };
    if let Err(e) = check("rte_eal_remote_launch", ret) {
        // SAFETY: the launch failed, so the lcore never saw the slot; reclaim it.
        drop(unsafe { Box::from_raw(slot) });
        return Err(e);
    }
    Ok(LcoreJob {
        lcore,
        slot,
        joined: false,
    })
}

extern "C" fn trampoline<R: Send + 'static>(arg: *mut c_void) -> c_int {
    let slot = arg.cast::<Slot<R>>();
    // SAFETY: `arg` is the slot passed by `launch`; the launching side does not touch it until
    // rte_eal_wait_lcore returns, which happens after this function returns.
    let job = unsafe { (*slot).job.take() };
    let Some(job) = job else { return -1 };
    let outcome = catch_unwind(AssertUnwindSafe(job)).map_err(panic_message);
    let code = if outcome.is_ok() { 0 } else { -1 };
    // SAFETY: as above; the write is published to the joiner by rte_eal_wait_lcore.
    unsafe { (*slot).result = Some(outcome) };
    code
}

/// Runs `f` on the calling thread (the main lcore) with the same panic reporting.
pub fn run_here<F, R>(lcore: u32, f: F) -> std::result::Result<R, WorkerPanic>
where
    F: FnOnce() -> R,
{
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| WorkerPanic {
        lcore,
        message: panic_message(p),
    })
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl<R: Send + 'static> LcoreJob<R> {
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Waits for the closure to return; a panic comes back as `Err(WorkerPanic)`.
    pub fn join(mut self) -> std::result::Result<R, WorkerPanic> {
        self.wait()
    }

    fn wait(&mut self) -> std::result::Result<R, WorkerPanic> {
        if self.joined {
            return Err(WorkerPanic {
                lcore: self.lcore,
                message: "already joined".into(),
            });
        }
        // SAFETY: the lcore was launched by us; waiting is always allowed.
        unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) };
        self.joined = true;
        // SAFETY: the lcore finished, so we are the slot's only user; it came from Box::into_raw.
        let slot = unsafe { Box::from_raw(self.slot) };
        match slot.result {
            Some(Ok(r)) => Ok(r),
            Some(Err(message)) => Err(WorkerPanic {
                lcore: self.lcore,
                message,
            }),
            None => Err(WorkerPanic {
                lcore: self.lcore,
                message: "worker exited without a result".into(),
            }),
        }
    }
}

impl<R: Send + 'static> Drop for LcoreJob<R> {
    fn drop(&mut self) {
        if !self.joined {
            if let Err(p) = self.wait() {
                tracing::error!(%p, "unjoined lcore job failed");
            }
        }
    }
}

/// Convenience for errors of the launch itself.
pub fn lcore_not_available(lcore: u32) -> DpdkError {
    DpdkError::InvalidArgument(format!("lcore {lcore} is not an enabled worker lcore"))
}
