//! `uvio`: list, bind and inspect virtio PCI functions, and (in later commands) scan, read,
//! write and benchmark them from userspace.

mod bind;
mod info;
mod list;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use uvio::pci::PciAddress;

/// Errors the tools print; every library error converts into it.
pub type CmdResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Parser)]
#[command(
    name = "uvio",
    version,
    about = "Userspace polled virtio-blk / virtio-scsi driver over VFIO"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every virtio PCI function: type, IDs, bound driver, IOMMU group, usable by uvio.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Hand functions to vfio-pci so uvio can drive them.
    Bind {
        #[arg(required = true, value_name = "BDF")]
        functions: Vec<PciAddress>,
    },
    /// Give functions back from vfio-pci to their kernel driver.
    Unbind {
        #[arg(required = true, value_name = "BDF")]
        functions: Vec<PciAddress>,
    },
    /// Open a function through VFIO, negotiate features and print its configuration.
    Info {
        #[arg(value_name = "BDF")]
        function: PciAddress,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List { json } => list::run(json),
        Command::Bind { functions } => bind::bind(&functions),
        Command::Unbind { functions } => bind::unbind(&functions),
        Command::Info { function, json } => info::run(function, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uvio: error: {e}");
            ExitCode::FAILURE
        }
    }
}
