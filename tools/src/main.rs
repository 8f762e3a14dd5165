//! `uvio`: list, bind and inspect virtio PCI functions, and (in later commands) scan, read,
//! write and benchmark them from userspace.

mod bench;
mod bind;
mod command;
mod cpu;
mod finished;
mod inflight;
mod info;
mod interrupt;
mod io;
mod list;
mod logger;
mod open;
mod plot;
mod reset;
mod scan;
mod sg;
mod units;
mod verify;
mod xorshift;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

use command::CmdResult;
use open::Target;
use units::parse_binary_size;
use uvio::block::Op;
use uvio::pci::PciAddress;

#[derive(Parser)]
#[command(
    name = "uvio",
    version,
    about = "Userspace polled virtio-blk / virtio-scsi driver over VFIO"
)]
struct Cli {
    /// Virtqueue format: `auto` takes the packed ring (VIRTIO_F_RING_PACKED) whenever the
    /// device offers it, as Linux does; `split` keeps the split ring. Give it before the
    /// subcommand (`uvio --ring split bench ...`).
    #[arg(long, global = true, default_value = "auto", value_name = "auto|split")]
    ring: uvio::virtio::ring::RingKind,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A fio-like benchmark: fio's options (`--name=job --rw=randread --bs=4k ...`) or a
    /// fio job file; fio's normal or JSON output. `uvio bench --help` lists the options.
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "FIO ARGS"
        )]
        args: Vec<String>,
    },
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
        /// virtio-blk: drive the disk and follow configuration changes (a resize) for
        /// SECONDS, or until Ctrl-C / SIGTERM.
        #[arg(long, value_name = "SECONDS")]
        watch: Option<u64>,
    },
    /// Scan virtio-scsi hosts for LUNs as the kernel does (INQUIRY, REPORT LUNS, READ
    /// CAPACITY, VPD, MODE SENSE) and list them in lsscsi's layout. Scans every host bound
    /// to vfio-pci when none is named.
    Scan {
        #[command(flatten)]
        args: scan::ScanArgs,
        #[command(flatten)]
        deadline: Deadline,
    },
    /// Reset a SCSI LUN (LOGICAL UNIT RESET), or its whole target with --nexus (I_T NEXUS
    /// RESET), through the virtio-scsi control queue.
    Reset {
        #[arg(value_name = "BDF/C:T:L")]
        device: Target,
        #[arg(long)]
        nexus: bool,
        #[command(flatten)]
        deadline: Deadline,
    },
    /// Read bytes from a device to a file or stdout.
    Read {
        #[command(flatten)]
        range: DeviceRange,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        inject: InjectFault,
    },
    /// Write bytes from a file or stdin to a device.
    Write {
        #[arg(value_name = "DEVICE")]
        device: Target,
        #[arg(long, value_parser = parse_binary_size)]
        offset: u64,
        /// Read from here instead of stdin.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Bytes to write (default: all of the input).
        #[arg(long, value_parser = parse_binary_size)]
        length: Option<u64>,
        #[command(flatten)]
        deadline: Deadline,
        #[command(flatten)]
        inject: InjectFault,
    },
    /// Flush the device's volatile write cache.
    Flush {
        #[arg(value_name = "DEVICE")]
        device: Target,
        #[command(flatten)]
        deadline: Deadline,
    },
    /// Discard (deallocate) a range.
    Discard {
        #[command(flatten)]
        range: DeviceRange,
    },
    /// Stress and verify: one thread per hardware queue, `depth` random reads and writes in
    /// flight each, every completion checked.
    Verify {
        #[arg(value_name = "DEVICE")]
        device: Target,
        /// Hardware queues (threads) to use; default: all the device has.
        #[arg(long)]
        queues: Option<u16>,
        /// Requests in flight per queue; default: the ring size.
        #[arg(long)]
        depth: Option<u16>,
        /// Requests per queue.
        #[arg(long, default_value_t = 10000)]
        ios: u64,
        #[arg(long, value_parser = parse_binary_size, default_value = "4096")]
        bs: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        deadline: Deadline,
    },
    /// Standard INQUIRY of one LUN as sg_inq prints it, or a VPD page (--page) as sg_vpd
    /// prints it (0x00, 0x80, 0x83, 0x86, 0xb0, 0xb1, 0xb2 decoded; any page with --hex).
    Inq {
        #[arg(value_name = "BDF/C:T:L")]
        device: Target,
        /// VPD page: a number (0x83, 131) or sg_vpd's acronym (sv, sn, di, ei, bl, bdc, lbpv).
        #[arg(short = 'p', long, value_name = "PG", value_parser = sg::inq::parse_page)]
        page: Option<u8>,
        /// The reply in hex, as sg_inq -H / sg_vpd -H print it.
        #[arg(short = 'H', long)]
        hex: bool,
        #[command(flatten)]
        deadline: Deadline,
    },
    /// READ CAPACITY of one LUN, printed as sg_readcap prints it (sg3_utils exit statuses).
    Readcap {
        #[arg(value_name = "BDF/C:T:L")]
        device: Target,
        /// READ CAPACITY (16) (sg_readcap --long).
        #[arg(short = 'l', long)]
        long: bool,
        #[command(flatten)]
        deadline: Deadline,
    },
    /// One TEST UNIT READY to a LUN, reported as sg_turs reports it.
    Tur {
        #[arg(value_name = "BDF/C:T:L")]
        device: Target,
        #[command(flatten)]
        deadline: Deadline,
    },
    /// REPORT LUNS to a target, printed as sg_luns prints it.
    Luns {
        #[arg(value_name = "BDF/C:T")]
        target: sg::luns::TargetAddress,
        /// SELECT REPORT: 0 most LUNs, 1 well-known LUNs, 2 all, 0x10-0x12 administrative.
        #[arg(short = 's', long, value_name = "N", default_value = "0", value_parser = sg::parse_num)]
        select: u32,
        /// Decode each LUN's address (sg_luns --decode).
        #[arg(short = 'd', long)]
        decode: bool,
        #[command(flatten)]
        deadline: Deadline,
    },
    /// Any SCSI command to a LUN, given as CDB bytes in hex, reported as sg_raw reports it
    /// (on stderr; sg3_utils exit statuses).
    Raw {
        #[command(flatten)]
        args: sg::raw::RawArgs,
        #[command(flatten)]
        deadline: Deadline,
    },
    /// Write zeroes over a range.
    WriteZeroes {
        #[command(flatten)]
        range: DeviceRange,
    },
    /// Draw SVG charts of a benchmark run: latency percentiles and histogram from a JSON report
    /// of fio or `uvio bench` (`--output-format=json+`), and IOPS, bandwidth and latency over
    /// time from fio-format logs (`write_iops_log`, `write_bw_log`, `write_lat_log`). Writes
    /// NAME-percentiles.svg, NAME-histogram.svg and PREFIX-iops.svg, -bw, -lat, -clat, -slat
    /// into the output directory and prints their paths.
    Plot {
        #[command(flatten)]
        args: plot::PlotArgs,
    },
}

/// A byte range of a device: `DEVICE --offset N --length N`.
#[derive(Args)]
struct DeviceRange {
    #[arg(value_name = "DEVICE")]
    device: Target,
    #[arg(long, value_parser = parse_binary_size)]
    offset: u64,
    #[arg(long, value_parser = parse_binary_size)]
    length: u64,
    #[command(flatten)]
    deadline: Deadline,
}

/// Fault injection for the recovery tests; hidden from help.
#[derive(Debug, Args)]
struct InjectFault {
    /// Send the first request with an 8-byte header (QEMU's virtio-blk then sets
    /// DEVICE_NEEDS_RESET): proves the in-place device reset. Split rings only.
    #[arg(long, hide = true)]
    inject_short_header: bool,
}

impl InjectFault {
    fn apply(&self) {
        if self.inject_short_header {
            open::inject_short_header();
        }
    }
}

/// How long one request may take: past it, the command fails with "timed out".
#[derive(Args, Clone, Copy)]
struct Deadline {
    /// How long one request may take before the command gives up on it ("timed out"):
    /// `30s`, `500ms`, `2m`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    timeout: Duration,
}

impl Deadline {
    /// Makes the deadline the one every queue this process opens gets.
    fn apply(self) {
        open::set_request_timeout(self.timeout);
    }
}

/// A `--timeout` value: fio's time syntax (unitless means seconds), more than zero.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match units::parse_time(text) {
        Ok(d) if d.is_zero() => Err("a timeout must be more than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

impl DeviceRange {
    /// Runs `op` (discard, write zeroes) over the range.
    fn apply(self, op: Op) -> CmdResult {
        self.deadline.apply();
        io::range_op(self.device, op, self.offset, self.length)
    }
}

fn main() -> ExitCode {
    logger::init();
    let cli = Cli::parse();
    // Every command stops cleanly on Ctrl-C / SIGTERM: its loop sees the signal, the device
    // is reset on the way out, and the exit status says which signal (128 + N). The same
    // loops stop when the kernel asks for a device back (hot-unplug); that exits 1.
    interrupt::catch();
    open::set_ring(cli.ring);
    let result = match cli.command {
        Command::List { json } => list::run(json),
        Command::Bind { functions } => bind::bind(&functions),
        Command::Unbind { functions } => bind::unbind(&functions),
        Command::Info {
            function,
            watch: Some(seconds),
            ..
        } => info::watch_blk(function, std::time::Duration::from_secs(seconds)),
        Command::Info {
            function,
            json,
            watch: None,
        } => info::run(function, json),
        Command::Bench { args } => bench::run(&args),
        Command::Scan { args, deadline } => {
            // A watch runs until stopped: only the scan's commands get the deadline.
            if args.watch.is_none() {
                deadline.apply();
            }
            scan::main(args, deadline.timeout)
        }
        Command::Reset {
            device,
            nexus,
            deadline,
        } => {
            deadline.apply();
            reset::run(device, nexus)
        }
        Command::Read {
            range,
            output,
            inject,
        } => {
            range.deadline.apply();
            inject.apply();
            io::read(range.device, range.offset, range.length, output)
        }
        Command::Write {
            device,
            offset,
            input,
            length,
            deadline,
            inject,
        } => {
            deadline.apply();
            inject.apply();
            io::write(device, offset, input, length)
        }
        Command::Flush { device, deadline } => {
            deadline.apply();
            io::flush(device)
        }
        Command::Inq {
            device,
            page,
            hex,
            deadline,
        } => {
            deadline.apply();
            sg::inq::run(device, page, hex)
        }
        Command::Readcap {
            device,
            long,
            deadline,
        } => {
            deadline.apply();
            sg::readcap::run(device, long)
        }
        Command::Tur { device, deadline } => {
            deadline.apply();
            sg::tur::run(device)
        }
        Command::Luns {
            target,
            select,
            decode,
            deadline,
        } => {
            deadline.apply();
            sg::luns::run(target, select, decode)
        }
        Command::Raw { args, deadline } => {
            deadline.apply();
            sg::raw::run(args)
        }
        Command::Discard { range } => range.apply(Op::Discard),
        Command::WriteZeroes { range } => range.apply(Op::WriteZeroes),
        Command::Plot { args } => plot::run(args),
        Command::Verify {
            device,
            queues,
            depth,
            ios,
            bs,
            seed,
            json,
            deadline,
        } => {
            deadline.apply();
            verify::run(device, queues, depth, ios, bs, seed, json)
        }
    };
    // A device removed meanwhile (hot-unplug) fails the command, whatever it got to.
    match interrupt::account_for_removal(result) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // An sg-style command that already reported its failure as sg3_utils does
            // (`uvio raw`) leaves nothing more to say.
            let message = e.to_string();
            if !message.is_empty() {
                eprintln!("uvio: error: {message}");
            }
            let status = sg::exit_status(&*e).unwrap_or_else(|| interrupt::exit_status(&*e));
            ExitCode::from(status)
        }
    }
}
