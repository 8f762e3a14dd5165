//! The per-process limit on guests running at once.

use std::sync::{Condvar, Mutex};
use std::thread::ThreadId;

/// Limits how many guests one test process runs at once: TCG guests on a 2-core machine only
/// slow each other down, and a starved guest hits its timeout. A thread that already holds a
/// slot is not limited again (so a test may run two guests side by side without deadlock).
pub(super) struct SlotGuard {
    owner: Option<ThreadId>,
}

struct SlotState {
    used: usize,
    holders: Vec<ThreadId>,
}

static SLOTS: Mutex<SlotState> = Mutex::new(SlotState {
    used: 0,
    holders: Vec::new(),
});
static SLOTS_FREED: Condvar = Condvar::new();

impl SlotGuard {
    fn limit() -> usize {
        std::env::var("UVIO_VM_JOBS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() / 2))
            .max(1)
    }

    pub(super) fn acquire() -> SlotGuard {
        let me = std::thread::current().id();
        let limit = Self::limit();
        let mut st = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
        if st.holders.contains(&me) {
            return SlotGuard { owner: None };
        }
        while st.used >= limit {
            st = SLOTS_FREED.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.used += 1;
        st.holders.push(me);
        SlotGuard { owner: Some(me) }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(owner) = self.owner {
            let mut st = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
            st.used -= 1;
            if let Some(i) = st.holders.iter().position(|t| *t == owner) {
                st.holders.swap_remove(i);
            }
            SLOTS_FREED.notify_all();
        }
    }
}
