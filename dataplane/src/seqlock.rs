//! A sequence lock for one slot of a shared, fixed-size table (the neighbour cache, the
//! fragment tracker): readers never block and never write shared memory, writers never wait.
//!
//! The sequence is even while the slot is stable and odd while a writer holds it. A reader
//! loads the sequence, the slot's fields (every field an atomic, loaded `Relaxed`) and the
//! sequence again, and keeps what it read only if the two agree and were even: a torn read is
//! detected and retried, never returned. A writer takes the slot by moving the sequence from
//! even to odd with a compare-exchange and gives up at once if another writer holds it (the
//! callers treat that as a busy slot: a lookup misses, a learn is retried by the next packet).

use std::sync::atomic::{fence, AtomicU32, Ordering};

/// Reads of a busy slot before [`SeqLock::read`] gives up (the callers treat it as a miss).
const READ_ATTEMPTS: usize = 4;

#[derive(Debug, Default)]
pub struct SeqLock {
    seq: AtomicU32,
}

impl SeqLock {
    /// `load` run under the lock: its result once it read the slot consistently, within
    /// [`READ_ATTEMPTS`] tries; `None` if a writer held the slot or wrote it during every try.
    /// `load` must only load the slot's atomics (`Relaxed` is enough: the fences order them).
    #[inline]
    pub fn read<T>(&self, load: impl Fn() -> T) -> Option<T> {
        for _ in 0..READ_ATTEMPTS {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let value = load();
            // Order the field loads before the second sequence load.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return Some(value);
            }
        }
        None
    }

    /// Runs `store` as the slot's only writer and returns true; false, with nothing run, if
    /// another writer holds the slot. `store` must only store to the slot's atomics.
    #[inline]
    pub fn try_write(&self, store: impl FnOnce()) -> bool {
        let before = self.seq.load(Ordering::Relaxed);
        if before & 1 == 1
            || self
                .seq
                .compare_exchange(
                    before,
                    before.wrapping_add(1),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return false;
        }
        // Order the odd sequence before the field stores (readers check it after theirs).
        fence(Ordering::Release);
        store();
        self.seq.store(before.wrapping_add(2), Ordering::Release);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    #[derive(Default)]
    struct Pair {
        lock: SeqLock,
        a: AtomicU64,
        b: AtomicU64,
    }

    impl Pair {
        fn read(&self) -> Option<(u64, u64)> {
            self.lock.read(|| {
                (
                    self.a.load(Ordering::Relaxed),
                    self.b.load(Ordering::Relaxed),
                )
            })
        }
    }

    #[test]
    fn a_write_is_read_back_whole() {
        let p = Pair::default();
        assert_eq!(p.read(), Some((0, 0)));
        assert!(p.lock.try_write(|| {
            p.a.store(7, Ordering::Relaxed);
            p.b.store(8, Ordering::Relaxed);
        }));
        assert_eq!(p.read(), Some((7, 8)));
    }

    #[test]
    fn a_held_slot_refuses_a_second_writer_and_reads_as_busy() {
        let p = Pair::default();
        let mut inner_wrote = true;
        let mut read_inside = Some((1, 1));
        assert!(p.lock.try_write(|| {
            inner_wrote = p.lock.try_write(|| p.a.store(99, Ordering::Relaxed));
            read_inside = p.read();
            p.b.store(1, Ordering::Relaxed);
        }));
        assert!(!inner_wrote, "a second writer got in");
        assert_eq!(read_inside, None, "a reader saw a slot being written");
        assert_eq!(
            p.read(),
            Some((0, 1)),
            "the refused writer changed the slot"
        );
    }

    #[test]
    fn concurrent_readers_never_see_a_torn_pair() {
        let p = Arc::new(Pair::default());
        let writer = {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                let mut written = 0u64;
                for v in 1..=200_000u64 {
                    if p.lock.try_write(|| {
                        p.a.store(v, Ordering::Relaxed);
                        p.b.store(!v, Ordering::Relaxed);
                    }) {
                        written += 1;
                    }
                }
                written
            })
        };
        let (mut consistent, mut busy) = (0u64, 0u64);
        while !writer.is_finished() {
            match p.read() {
                Some((a, b)) => {
                    assert!(a == 0 && b == 0 || b == !a, "torn read: {a:#x} {b:#x}");
                    consistent += 1;
                }
                None => busy += 1,
            }
        }
        // One writer never meets another, so every write went in.
        assert_eq!(writer.join().unwrap(), 200_000);
        assert_eq!(p.read(), Some((200_000, !200_000)));
        assert!(consistent + busy > 0);
    }
}
