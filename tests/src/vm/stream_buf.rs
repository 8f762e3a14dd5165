//! Capturing QEMU's stdout (the guest console) and stderr: a reader thread per pipe fills a
//! [`StreamBuf`] that waiters watch.

use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Bytes read from one of QEMU's output pipes, with a condition variable for waiters.
#[derive(Default)]
pub(super) struct StreamBuf {
    /// What was read so far, and whether the pipe has reached EOF.
    pub(super) state: Mutex<(Vec<u8>, bool)>,
    pub(super) changed: Condvar,
}

impl StreamBuf {
    pub(super) fn text(&self) -> String {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        clean_text(&st.0)
    }
}

pub(super) fn clean_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\r', "")
}

pub(super) fn spawn_reader(
    mut pipe: impl Read + Send + 'static,
    buf: Arc<StreamBuf>,
    echo: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            let n = match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if echo {
                let _ = std::io::stderr().write_all(&chunk[..n]);
            }
            let mut st = buf.state.lock().unwrap_or_else(|p| p.into_inner());
            st.0.extend_from_slice(&chunk[..n]);
            buf.changed.notify_all();
        }
        let mut st = buf.state.lock().unwrap_or_else(|p| p.into_inner());
        st.1 = true;
        buf.changed.notify_all();
    })
}
