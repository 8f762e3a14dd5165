//! What the scan's `async` logic sends its commands through ([`ScanLink`]), the link that
//! runs each command at once through a [`CommandRunner`] ([`Immediate`]), and the two small
//! pieces of executor that need: [`block_on`] and [`join_ordered`]. No runtime: a scan's
//! future is polled by the caller that owns the device.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::{CommandRunner, LunCommand};
use crate::block::IoError;

/// A future the scan boxes (a LUN probe run beside others); not `Send`: a scan runs on the
/// thread that owns the queue.
pub(super) type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Where the scan's commands go. Each `await` on [`run`](Self::run) is one command and its
/// answer; on [`sleep`](Self::sleep), a back-off.
pub(crate) trait ScanLink: Sized {
    fn run(&mut self, command: LunCommand) -> impl Future<Output = Result<Vec<u8>, IoError>>;
    fn sleep(&mut self, pause: Duration) -> impl Future<Output = ()>;
    /// Another link to the same device, for commands sent alongside this link's (a LUN
    /// probed while its neighbours are); `None` when commands go one at a time.
    fn fork(&mut self) -> Option<Self>;
}

/// Runs each command through a [`CommandRunner`] as it is awaited: its futures are ready
/// at once, so [`block_on`] never waits.
pub(super) struct Immediate<'a>(pub &'a mut dyn CommandRunner);

impl ScanLink for Immediate<'_> {
    fn run(&mut self, command: LunCommand) -> impl Future<Output = Result<Vec<u8>, IoError>> {
        std::future::ready(self.0.run(command))
    }

    fn sleep(&mut self, pause: Duration) -> impl Future<Output = ()> {
        self.0.sleep(pause);
        std::future::ready(())
    }

    fn fork(&mut self) -> Option<Self> {
        None
    }
}

/// Runs a future over an [`Immediate`] link to its end. Such a future never returns
/// `Pending` (every command is answered before its `await` returns), so this is one poll.
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        // Only a link that defers its answers pends, and such a link has its own driver
        // loop ([`super::concurrent`]); nothing to wait for here but that.
        std::hint::spin_loop();
    }
}

/// Runs `futures` side by side; their outputs in the order of `futures`. Every poll polls
/// each unfinished one (they check their own answers: a spurious poll costs a look).
pub(super) fn join_ordered<'a, T: 'a>(
    futures: Vec<LocalFuture<'a, T>>,
) -> impl Future<Output = Vec<T>> + 'a {
    let mut pending: Vec<Option<LocalFuture<'a, T>>> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut all_done = true;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            Poll::Ready(outputs.iter_mut().filter_map(Option::take).collect())
        } else {
            Poll::Pending
        }
    })
}
