//! What every command returns.

/// Errors the tools print; every library error converts into it.
pub type CmdResult = Result<(), Box<dyn std::error::Error>>;
