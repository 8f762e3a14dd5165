//! The binary's logger: the driver's `log::error!`/`warn!` ("virtqueue broken", "reset on
//! close failed") reach stderr as `uvio: warning: ...`. The level comes from `UVIO_LOG`:
//! `off`, `error`, `warn` (the default), `info`, `debug` or `trace`. Debug and trace lines
//! name the module they come from. (`RUST_LOG` is not read: its module filters are
//! env_logger's syntax, and a value meant for another program should not change uvio's.)

use log::{LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        let line = if record.level() <= log::Level::Info {
            format!("uvio: {level}: {}\n", record.args())
        } else {
            format!("uvio: {level}: [{}] {}\n", record.target(), record.args())
        };
        // One write per line, so lines from several threads do not interleave.
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    }

    fn flush(&self) {}
}

/// A level as `UVIO_LOG` spells it (case-insensitive), or `None`.
fn parse_level(text: &str) -> Option<LevelFilter> {
    Some(match text.trim().to_ascii_lowercase().as_str() {
        "off" | "none" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warn" | "warning" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

/// The level `UVIO_LOG` asks for (unset: warn), and a complaint when it names none.
fn level_from(uvio_log: Option<String>) -> (LevelFilter, Option<String>) {
    let Some(value) = uvio_log else {
        return (LevelFilter::Warn, None);
    };
    match parse_level(&value) {
        Some(level) => (level, None),
        None => (
            LevelFilter::Warn,
            Some(format!(
                "UVIO_LOG=`{value}` is not a level (off, error, warn, info, debug, trace); \
                 logging warnings and errors"
            )),
        ),
    }
}

/// Installs the logger; call once, first thing in `main`.
pub fn init() {
    static LOGGER: Stderr = Stderr;
    let (level, complaint) = level_from(std::env::var("UVIO_LOG").ok());
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
    if let Some(c) = complaint {
        log::warn!("{c}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_comes_from_uvio_log_default_warn() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(level_from(None), (LevelFilter::Warn, None));
        assert_eq!(level_from(s("debug")).0, LevelFilter::Debug);
        assert_eq!(level_from(s("ERROR")).0, LevelFilter::Error);
        assert_eq!(level_from(s(" off ")).0, LevelFilter::Off);
        assert_eq!(level_from(s("warning")).0, LevelFilter::Warn);
        assert_eq!(level_from(s("trace")).0, LevelFilter::Trace);
        let (level, complaint) = level_from(s("loud"));
        assert_eq!(level, LevelFilter::Warn);
        assert!(complaint
            .unwrap()
            .contains("UVIO_LOG=`loud` is not a level"));
    }
}
