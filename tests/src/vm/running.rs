//! [`RunningVm`]: a QEMU process started from a spec, its console and QMP socket, and how a run
//! ends (the guest powers off, or the test kills it).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::output::{parse_exit_code, parse_sections, VmOutput};
use super::qmp::Qmp;
use super::run_dir::RunDir;
use super::slots::SlotGuard;
use super::stream_buf::{clean_text, spawn_reader, StreamBuf};

/// A guest that is running. Dropping it kills QEMU (also on panic), so a failing test never
/// leaves a guest behind. QEMU is also killed if the thread that spawned it exits
/// (`PR_SET_PDEATHSIG`), so keep a `RunningVm` on the thread that created it.
pub struct RunningVm {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    console: Arc<StreamBuf>,
    stderr: Arc<StreamBuf>,
    readers: Vec<JoinHandle<()>>,
    qmp_path: Option<PathBuf>,
    cursor: usize,
    started: Instant,
    command: String,
    _slot: SlotGuard,
    _run_dir: RunDir,
}

impl RunningVm {
    /// Starts QEMU with `cmd` (built by `VmSpec::qemu_command`) once a slot is free; `run_dir`
    /// lives as long as the guest.
    pub(super) fn start(mut cmd: Command, qmp_path: Option<PathBuf>, run_dir: RunDir) -> RunningVm {
        // Waiting for a slot happens before the clock starts, so queued guests do not time out.
        let slot = SlotGuard::acquire();
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                // why: if the test process dies (SIGKILL from a CI timeout), a TCG guest would
                // otherwise spin on a core forever.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start QEMU {cmd:?}: {e}"));
        let console = Arc::new(StreamBuf::default());
        let stderr = Arc::new(StreamBuf::default());
        let echo = std::env::var("UVIO_VM_ECHO").is_ok_and(|v| v == "1");
        let readers = vec![
            spawn_reader(
                child.stdout.take().expect("piped stdout"),
                console.clone(),
                echo,
            ),
            spawn_reader(
                child.stderr.take().expect("piped stderr"),
                stderr.clone(),
                echo,
            ),
        ];
        RunningVm {
            stdin: child.stdin.take(),
            child: Some(child),
            console,
            stderr,
            readers,
            qmp_path,
            cursor: 0,
            started,
            command: format!("{cmd:?}"),
            _slot: slot,
            _run_dir: run_dir,
        }
    }

    /// The console so far (CRs removed).
    pub fn console(&self) -> String {
        self.console.text()
    }

    /// Waits until `pattern` appears in console output after the previous match (each call
    /// consumes output up to the end of its match, so the same marker can be awaited twice).
    /// Returns the whole console line that contains the match. Panics, with the console, if
    /// QEMU exits first or `timeout` passes.
    pub fn wait_for_console(&mut self, pattern: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut st = self.console.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let text = clean_text(&st.0);
            // why: lossy UTF-8 decoding of a half-received character can shift offsets; keep
            // the cursor on a char boundary.
            let mut cursor = self.cursor.min(text.len());
            while !text.is_char_boundary(cursor) {
                cursor -= 1;
            }
            self.cursor = cursor;
            if let Some(i) = text[cursor..].find(pattern) {
                let start = self.cursor + i;
                let end = start + pattern.len();
                self.cursor = end;
                let line_start = text[..start].rfind('\n').map_or(0, |p| p + 1);
                let line_end = text[end..].find('\n').map_or(text.len(), |p| end + p);
                return text[line_start..line_end].to_string();
            }
            let eof = st.1;
            let now = Instant::now();
            if eof || now >= deadline {
                drop(st);
                let why = if eof { "QEMU exited" } else { "timed out" };
                panic!(
                    "waiting for {pattern:?} on the guest console: {why} after {:?}\n\
                     --- qemu stderr ---\n{}\n--- console ---\n{}\n--- end of console ---",
                    self.started.elapsed(),
                    self.stderr.text(),
                    text
                );
            }
            st = self
                .console
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Types `line` (plus a newline) on the guest console; the guest reads it with `host_wait`.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self
            .stdin
            .as_mut()
            .expect("QEMU stdin is open while the VM runs");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("send {line:?} to the guest console: {e}"));
    }

    /// Connects to the VM's QMP socket (the spec needs `.qmp(true)`). Keep one connection:
    /// QEMU serves one QMP client at a time.
    pub fn qmp(&self) -> Qmp {
        let path = self
            .qmp_path
            .as_ref()
            .expect("RunningVm::qmp needs VmSpec::qmp(true)");
        Qmp::connect(path, Duration::from_secs(30)).unwrap_or_else(|e| {
            panic!(
                "QMP: {e}\n--- qemu stderr ---\n{}\n--- console ---\n{}",
                self.stderr.text(),
                self.console.text()
            )
        })
    }

    /// Waits up to `timeout` for the guest to power off and returns its output. On timeout,
    /// kills QEMU and panics with the console.
    pub fn wait(mut self, timeout: Duration) -> VmOutput {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("VM not yet waited for");
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("waiting for QEMU: {e}"),
            }
        };
        let out = self.collect(status);
        if out.timed_out {
            panic!("guest did not power off within {timeout:?}\n{out}");
        }
        out
    }

    /// Kills QEMU at once and returns what the guest printed so far.
    pub fn kill(mut self) -> VmOutput {
        let mut child = self.child.take().expect("VM not yet waited for");
        let _ = child.kill();
        let status = child.wait().ok();
        self.collect(status)
    }

    fn collect(&mut self, status: Option<ExitStatus>) -> VmOutput {
        self.stdin = None;
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let console = self.console.text();
        let (sections, unfinished) = parse_sections(&console);
        VmOutput {
            exit_code: parse_exit_code(&console),
            sections,
            unfinished,
            qemu_stderr: self.stderr.text(),
            qemu_status: status,
            timed_out: status.is_none(),
            elapsed: self.started.elapsed(),
            command: self.command.clone(),
            console,
        }
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
