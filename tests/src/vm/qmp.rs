//! A small synchronous QMP client (QEMU Machine Protocol: one JSON object per line over a unix
//! socket).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A connected QMP session, past the `qmp_capabilities` handshake.
///
/// QEMU serves one QMP client per socket at a time: keep one `Qmp` per VM.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    greeting: Value,
    events: Vec<Value>,
    next_id: u64,
}

impl Qmp {
    /// Connects to `path`, retrying until `timeout` (QEMU creates the socket a moment after it
    /// starts), reads the greeting and negotiates capabilities.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, String> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("connect to QMP socket {}: {e}", path.display()))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        // why: a wedged QEMU must fail the test, not hang it.
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(|e| format!("set QMP read timeout: {e}"))?;
        let writer = stream
            .try_clone()
            .map_err(|e| format!("clone QMP socket: {e}"))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
            greeting: Value::Null,
            events: Vec::new(),
            next_id: 1,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("unexpected QMP greeting: {greeting}"));
        }
        qmp.greeting = greeting;
        qmp.execute("qmp_capabilities", Value::Null)?;
        Ok(qmp)
    }

    /// The greeting QEMU sent (version and capabilities).
    pub fn greeting(&self) -> &Value {
        &self.greeting
    }

    /// Runs a command and returns its `return` value, or `Err("Class: description")` for a QMP
    /// error. `args` is the `arguments` object; pass `Value::Null` (or `json!({})`) for none.
    /// Asynchronous events that arrive meanwhile are kept (see [`Qmp::events`]).
    pub fn execute(&mut self, cmd: &str, args: Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "execute": cmd, "id": id });
        if !args.is_null() {
            msg["arguments"] = args;
        }
        let line = msg.to_string() + "\n";
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| format!("QMP send {cmd}: {e}"))?;
        loop {
            let reply = self.read_message()?;
            if reply.get("event").is_some() {
                self.events.push(reply);
                continue;
            }
            if reply.get("id").and_then(Value::as_u64) != Some(id) {
                return Err(format!("QMP {cmd}: reply for another request: {reply}"));
            }
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                let class = err.get("class").and_then(Value::as_str).unwrap_or("?");
                let desc = err.get("desc").and_then(Value::as_str).unwrap_or("?");
                return Err(format!("{class}: {desc}"));
            }
            return Err(format!("QMP {cmd}: unexpected reply {reply}"));
        }
    }

    /// Events received so far, oldest first.
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    /// Waits for an event named `name` (e.g. `DEVICE_DELETED`) that was not yet returned by
    /// this method; events already received count. Returns the event object.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Value, String> {
        if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
            return Ok(self.events.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no QMP event {name} within {timeout:?}"));
            }
            self.reader
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|e| format!("set QMP read timeout: {e}"))?;
            let msg = self.read_message();
            let _ = self
                .reader
                .get_ref()
                .set_read_timeout(Some(Duration::from_secs(120)));
            let msg = msg?;
            if msg["event"] == name {
                return Ok(msg);
            }
            if msg.get("event").is_some() {
                self.events.push(msg);
            }
        }
    }

    fn read_message(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| format!("QMP read: {e}"))?;
            if n == 0 {
                return Err("QMP connection closed by QEMU".to_string());
            }
            if !line.trim().is_empty() {
                break;
            }
        }
        serde_json::from_str(&line).map_err(|e| format!("QMP: bad JSON {line:?}: {e}"))
    }
}
