//! libuvio: the C API of uvio (`include/uvio.h`), built as `libuvio.so` and `libuvio.a`.
//!
//! It wraps the driver's block API as libblkio's `blkio.h` wraps its drivers: a device is
//! named and given properties, started, asked for its limits; DMA memory regions hold every
//! data buffer; each thread drives a queue of its own, submitting requests with a cookie and
//! polling their completions. Errors are negative errnos with a thread-local message.
//!
//! Modules: [`error`] (errno and message), [`handle`] (generation-checked handles),
//! [`memory`] (regions, and buffers named by address), [`queue`] (one queue as C drives
//! it), [`device`] (open, start, close), and [`api`], the exported functions themselves.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

#[cfg(test)]
mod alloc_count;
pub mod api;
pub mod device;
pub mod error;
pub mod handle;
pub mod memory;
pub mod queue;
#[cfg(test)]
mod tests;

pub use api::*;
pub use queue::uvio_completion;
