//! The concurrent scan: up to N targets scanned side by side over a queue of the host's
//! tags, each by the same state machine as the sequential scan (the `async` target scan of
//! the parent module), and the LUNs of a REPORT LUNS list probed side by side within a
//! target. Each LUN has one command in flight at a time (within any `cmd_per_lun`), and
//! the queue's free tags bound what is in flight in all. The result is put together in
//! target order, so it is the sequential scan's, line for line; with N = 1 the commands
//! themselves go out in the sequential scan's order.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::link::{LocalFuture, ScanLink};
use super::{target_scan, LunCommand, ScanReport};
use crate::block::IoError;

/// Why a port did not take a command.
#[derive(Debug)]
pub enum PortRefusal {
    /// No tag is free now: send it again after a completion.
    Full,
    /// The command cannot be sent at all; this is its answer.
    Failed(IoError),
}

/// A queue the concurrent scan sends commands through without waiting for them: each
/// command carries a key, and its answer comes back from [`poll`](Self::poll) with it.
pub trait CommandPort {
    /// Commands that could be submitted now (free tags).
    fn room(&self) -> usize;
    /// Commands submitted and not yet answered.
    fn in_flight(&self) -> usize;
    fn submit(&mut self, key: usize, command: LunCommand) -> Result<(), PortRefusal>;
    /// Makes submitted commands visible to the device.
    fn kick(&mut self);
    /// Hands every answered command to `done`: its key and the data or the error.
    fn poll(&mut self, done: &mut dyn FnMut(usize, Result<Vec<u8>, IoError>));
}

/// How far a scan is, for a progress line; shared with another thread that shows it.
#[derive(Debug, Default)]
pub struct ScanProgress {
    targets: AtomicU32,
    targets_done: AtomicU32,
    luns: AtomicU32,
    finished: AtomicBool,
}

impl ScanProgress {
    /// Target ids the scan looks at.
    pub fn targets(&self) -> u32 {
        self.targets.load(Ordering::Relaxed)
    }

    /// Targets scanned to the end.
    pub fn targets_done(&self) -> u32 {
        self.targets_done.load(Ordering::Relaxed)
    }

    /// Logical units found in the targets scanned so far.
    pub fn luns_found(&self) -> u32 {
        self.luns.load(Ordering::Relaxed)
    }

    /// The scan is over.
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    pub(crate) fn start(&self, targets: u32) {
        self.targets.store(targets, Ordering::Relaxed);
        self.targets_done.store(0, Ordering::Relaxed);
        self.luns.store(0, Ordering::Relaxed);
        self.finished.store(false, Ordering::Release);
    }

    pub(crate) fn target_done(&self, luns: usize) {
        self.targets_done.fetch_add(1, Ordering::Relaxed);
        self.luns.fetch_add(luns as u32, Ordering::Relaxed);
    }

    pub(crate) fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }
}

/// One link's exchange: the task it belongs to, the command it wants sent, its answer.
#[derive(Debug)]
struct Exchange {
    task: usize,
    command: Option<LunCommand>,
    answer: Option<Result<Vec<u8>, IoError>>,
}

/// What the links of all tasks share with the driver loop.
#[derive(Debug, Default)]
struct Hub {
    exchanges: Vec<Exchange>,
    /// Links with a command to send, in the order they asked.
    outgoing: VecDeque<usize>,
    /// Back-offs: when a task may go on.
    timers: Vec<(Instant, usize)>,
    /// Whether a link may fork (LUNs side by side); off for N = 1.
    forks: bool,
}

impl Hub {
    fn link(&mut self, task: usize) -> usize {
        self.exchanges.push(Exchange {
            task,
            command: None,
            answer: None,
        });
        self.exchanges.len() - 1
    }
}

/// A task's link to the driver loop: its command is sent when the loop gets to it, and its
/// future wakes when the loop polls the task after the answer came.
struct TaskLink {
    hub: Rc<RefCell<Hub>>,
    key: usize,
}

impl ScanLink for TaskLink {
    fn run(&mut self, command: LunCommand) -> impl Future<Output = Result<Vec<u8>, IoError>> {
        let mut command = Some(command);
        std::future::poll_fn(move |_| {
            let mut hub = self.hub.borrow_mut();
            if let Some(command) = command.take() {
                hub.exchanges[self.key].command = Some(command);
                hub.outgoing.push_back(self.key);
                return Poll::Pending;
            }
            match hub.exchanges[self.key].answer.take() {
                Some(answer) => Poll::Ready(answer),
                None => Poll::Pending,
            }
        })
    }

    fn sleep(&mut self, pause: Duration) -> impl Future<Output = ()> {
        let mut until = None;
        std::future::poll_fn(move |_| {
            let now = Instant::now();
            let until = *until.get_or_insert(now + pause);
            if now >= until {
                return Poll::Ready(());
            }
            let mut hub = self.hub.borrow_mut();
            let task = hub.exchanges[self.key].task;
            hub.timers.push((until, task));
            Poll::Pending
        })
    }

    fn fork(&mut self) -> Option<Self> {
        let mut hub = self.hub.borrow_mut();
        if !hub.forks {
            return None;
        }
        let task = hub.exchanges[self.key].task;
        let key = hub.link(task);
        Some(TaskLink {
            hub: Rc::clone(&self.hub),
            key,
        })
    }
}

/// Scans `targets` through `port` with up to `width` targets in flight (1: the kernel's
/// one-at-a-time order) and returns what the sequential scan returns, in its order.
/// `max_lun` is the largest Linux LUN integer the host accepts.
pub fn scan_targets(
    port: &mut dyn CommandPort,
    targets: &[u16],
    max_lun: u64,
    width: usize,
    progress: Option<&ScanProgress>,
) -> ScanReport {
    let width = width.max(1);
    if let Some(p) = progress {
        p.start(targets.len() as u32);
    }
    let hub = Rc::new(RefCell::new(Hub {
        forks: width > 1,
        ..Hub::default()
    }));
    let mut tasks: Vec<Option<LocalFuture<'static, ScanReport>>> =
        targets.iter().map(|_| None).collect();
    let mut reports: Vec<Option<ScanReport>> = targets.iter().map(|_| None).collect();
    let mut runnable: VecDeque<usize> = VecDeque::new();
    let (mut started, mut active) = (0, 0);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        while active < width && started < targets.len() {
            let key = hub.borrow_mut().link(started);
            let mut link = TaskLink {
                hub: Rc::clone(&hub),
                key,
            };
            let target = targets[started];
            tasks[started] = Some(Box::pin(async move {
                target_scan(&mut link, target, max_lun).await
            }));
            runnable.push_back(started);
            started += 1;
            active += 1;
        }
        if active == 0 {
            break;
        }
        while let Some(task) = runnable.pop_front() {
            let Some(future) = tasks[task].as_mut() else {
                continue;
            };
            if let Poll::Ready(report) = future.as_mut().poll(&mut cx) {
                tasks[task] = None;
                active -= 1;
                if let Some(p) = progress {
                    p.target_done(report.luns.len());
                }
                reports[task] = Some(report);
            }
        }
        send(port, &hub, &mut runnable);
        port.poll(&mut |key, answer| {
            let mut hub = hub.borrow_mut();
            hub.exchanges[key].answer = Some(answer);
            runnable.push_back(hub.exchanges[key].task);
        });
        let now = Instant::now();
        let mut hub_ref = hub.borrow_mut();
        hub_ref.timers.retain(|&(until, task)| {
            let due = until <= now;
            if due {
                runnable.push_back(task);
            }
            !due
        });
        if runnable.is_empty() && port.in_flight() == 0 {
            // Only back-offs are pending: sleep to the first one.
            if let Some(first) = hub_ref.timers.iter().map(|&(until, _)| until).min() {
                drop(hub_ref);
                std::thread::sleep(first.saturating_duration_since(now));
                continue;
            }
        }
        drop(hub_ref);
        if runnable.is_empty() {
            std::hint::spin_loop();
        }
    }
    if let Some(p) = progress {
        p.finish();
    }
    let mut report = ScanReport::default();
    for found in reports.into_iter().flatten() {
        report.luns.extend(found.luns);
        report.warnings.extend(found.warnings);
    }
    report
}

/// Submits the commands the tasks asked for, in order, while the port has room; a command
/// the port cannot take at all is answered with the reason.
fn send(port: &mut dyn CommandPort, hub: &Rc<RefCell<Hub>>, runnable: &mut VecDeque<usize>) {
    let mut hub = hub.borrow_mut();
    let mut sent = false;
    while port.room() > 0 {
        let Some(key) = hub.outgoing.pop_front() else {
            break;
        };
        let Some(command) = hub.exchanges[key].command.take() else {
            continue;
        };
        match port.submit(key, command) {
            Ok(()) => sent = true,
            Err(PortRefusal::Full) if port.in_flight() > 0 => {
                // Again after a completion frees a tag.
                hub.exchanges[key].command = Some(command);
                hub.outgoing.push_front(key);
                break;
            }
            Err(PortRefusal::Full) => {
                // Full with nothing in flight: no completion will ever free a tag, so the
                // command fails rather than waits forever.
                hub.exchanges[key].answer = Some(Err(IoError::QueueFull(0)));
                runnable.push_back(hub.exchanges[key].task);
            }
            Err(PortRefusal::Failed(error)) => {
                hub.exchanges[key].answer = Some(Err(error));
                runnable.push_back(hub.exchanges[key].task);
            }
        }
    }
    if sent {
        port.kick();
    }
}
