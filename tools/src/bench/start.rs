//! The start line of a group's job threads.
//!
//! Every job clone gets a [`StartTicket`] before its thread is spawned. A thread that is ready
//! to run waits with it ([`StartTicket::wait`]); the main thread starts them all at once when
//! every ticket is accounted for ([`StartGate::start_when_ready`]), or calls the run off
//! ([`StartGate::call_off`]) and the waiting threads return without doing I/O. A ticket that
//! is dropped unused (its thread failed to spawn, or panicked before it got ready) counts as
//! ready, so the main thread never waits for a thread that will not come: this replaces a
//! `Barrier` of n+1, on which one failed spawn left the started threads and the main thread
//! waiting for ever.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ScopedJoinHandle;

#[derive(Debug, Default)]
struct State {
    /// Tickets handed out.
    issued: usize,
    /// Tickets used (threads waiting) or dropped unused.
    accounted: usize,
    /// `Some(true)`: go; `Some(false)`: called off.
    decision: Option<bool>,
}

/// Where the threads of one group wait to start together.
#[derive(Debug, Default)]
pub struct StartGate {
    state: Mutex<State>,
    changed: Condvar,
}

impl StartGate {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (plain counters), so a poisoned lock is
        // still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ticket for one more thread.
    pub fn ticket(self: &Arc<Self>) -> StartTicket {
        self.lock().issued += 1;
        StartTicket {
            gate: Arc::clone(self),
            used: false,
        }
    }

    fn account(&self) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        state.accounted += 1;
        self.changed.notify_all();
        state
    }

    /// Main thread: waits until every ticket is used or dropped (or the run was called
    /// off), then starts the threads.
    pub fn start_when_ready(&self) {
        let mut state = self.lock();
        while state.accounted < state.issued && state.decision.is_none() {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.decision.get_or_insert(true);
        self.changed.notify_all();
    }

    /// Main thread: the run will not happen; waiting threads (and those still to come) return.
    pub fn call_off(&self) {
        self.lock().decision = Some(false);
        self.changed.notify_all();
    }
}

/// One job thread's place at the start line.
#[derive(Debug)]
pub struct StartTicket {
    gate: Arc<StartGate>,
    used: bool,
}

impl StartTicket {
    /// Job thread: ready; blocks until the main thread decides. `true`: run; `false`: the
    /// run was called off, return without I/O.
    pub fn wait(mut self) -> bool {
        self.used = true;
        let gate = Arc::clone(&self.gate);
        let mut state = gate.account();
        loop {
            if let Some(go) = state.decision {
                return go;
            }
            state = gate.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for StartTicket {
    fn drop(&mut self) {
        if !self.used {
            drop(self.gate.account());
        }
    }
}

/// Spawns one thread per item with `spawn`, then starts them together. If a spawn fails the
/// run is called off: the threads already started return without I/O (the caller's scope
/// joins them) and the error says which thread could not start.
pub fn start_threads<'scope, S, T>(
    gate: &StartGate,
    items: Vec<S>,
    mut spawn: impl FnMut(S) -> std::io::Result<ScopedJoinHandle<'scope, T>>,
) -> Result<Vec<ScopedJoinHandle<'scope, T>>, String> {
    let n = items.len();
    let mut handles = Vec::with_capacity(n);
    for (i, item) in items.into_iter().enumerate() {
        match spawn(item) {
            Ok(h) => handles.push(h),
            Err(e) => {
                gate.call_off();
                return Err(format!(
                    "could not start job thread {} of {n}: {e}; no job ran",
                    i + 1
                ));
            }
        }
    }
    gate.start_when_ready();
    Ok(handles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_failed_spawn_calls_the_run_off_without_hanging() {
        let gate = StartGate::new();
        let tickets: Vec<StartTicket> = (0..5).map(|_| gate.ticket()).collect();
        let ran = AtomicUsize::new(0);
        let called_off = AtomicUsize::new(0);
        let result = std::thread::scope(|scope| {
            let mut n = 0;
            let result = start_threads(&gate, tickets, |ticket| {
                n += 1;
                if n == 4 {
                    // The closure (and the ticket in it) is dropped, as a failed spawn does.
                    drop(ticket);
                    return Err(std::io::Error::other("no more threads"));
                }
                let (ran, called_off) = (&ran, &called_off);
                std::thread::Builder::new().spawn_scoped(scope, move || {
                    if ticket.wait() {
                        ran.fetch_add(1, Ordering::Relaxed);
                    } else {
                        called_off.fetch_add(1, Ordering::Relaxed);
                    }
                })
            });
            result.map(|h| h.len())
        });
        let e = result.unwrap_err();
        assert!(
            e.contains("job thread 4 of 5") && e.contains("no more threads"),
            "{e}"
        );
        assert_eq!(ran.load(Ordering::Relaxed), 0);
        assert_eq!(called_off.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn threads_start_together_once_all_are_ready() {
        let gate = StartGate::new();
        let tickets: Vec<StartTicket> = (0..4).map(|_| gate.ticket()).collect();
        let ran = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let handles = start_threads(&gate, tickets, |ticket| {
                let ran = &ran;
                std::thread::Builder::new().spawn_scoped(scope, move || {
                    if ticket.wait() {
                        ran.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .unwrap();
            assert_eq!(handles.len(), 4);
        });
        assert_eq!(ran.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_ticket_dropped_unused_does_not_hold_the_start() {
        let gate = StartGate::new();
        let used = gate.ticket();
        let lost = gate.ticket();
        std::thread::scope(|scope| {
            let t = scope.spawn(move || used.wait());
            // A thread that dies before it is ready drops its ticket.
            drop(lost);
            gate.start_when_ready();
            assert!(t.join().unwrap());
        });
    }
}
