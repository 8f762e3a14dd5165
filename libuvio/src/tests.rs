//! Host-side tests of the C API as C calls it: the hand-kept header against the library,
//! and the handle and argument checks.

mod handles;
mod header;
