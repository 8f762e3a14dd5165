//! The hot path on the host, no guest: `HwQueue` + encoder + ring against an in-process fake
//! device, 4 KiB reads at a fixed depth, in rounds of "submit `depth`, kick, device answers
//! all, reap all".
//!
//! It prints ns per request (noisy, like any timing) and is built to be run under callgrind
//! for instructions per request, which are deterministic: the driver's work lies in exactly
//! two functions, `hot_submit` and `hot_reap`, so
//!
//! ```sh
//! cargo build --release -p uvio --features fake-device --example hot_path
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     --toggle-collect='*hot_submit*' --toggle-collect='*hot_reap*' \
//!     target/release/examples/hot_path --device blk --depth 1 --requests 100000
//! ```
//!
//! counts the driver's instructions only (the fake device's are left out); divide the
//! "Collected" figure by the requests. `tests/tests/hot_path_ceiling.rs` does exactly that
//! and fails when a ceiling is passed.

use std::sync::Arc;
use std::time::Instant;

use uvio::blk::encoder::{BlkEncoder, BLK_CHAIN_OVERHEAD, BLK_SLOT_SIZE};
use uvio::block::{Data, HwQueue, Limits, Request, Unit};
use uvio::device::{AnyEncoder, AnyQueue};
use uvio::dma::{DmaBuf, DmaSpace};
use uvio::scsi::encoder::{ScsiEncoder, SCSI_CHAIN_OVERHEAD, SCSI_SLOT_SIZE};
use uvio::scsi::units::{UnitInfo, UnitTable};
use uvio::virtio::fake::{
    serve_blk, serve_blk_packed, serve_scsi, serve_scsi_packed, FakeChain, FakePackedDevice,
    FakeSplitDevice,
};
use uvio::virtio::pci::QueueNotifier;
use uvio::virtio::plan::{new_ring, RingShape};
use uvio::virtio::queue::Virtqueue;

const BLOCK: usize = 4096;
const RING: u16 = 256;
const CAPACITY: u64 = 1 << 30;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Blk,
    Scsi,
}

struct Args {
    kind: Kind,
    packed: bool,
    depth: u16,
    requests: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        kind: Kind::Blk,
        packed: false,
        depth: 1,
        requests: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--device" => {
                args.kind = match value()?.as_str() {
                    "blk" => Kind::Blk,
                    "scsi" => Kind::Scsi,
                    other => return Err(format!("--device blk|scsi, not {other}")),
                }
            }
            "--ring" => {
                args.packed = match value()?.as_str() {
                    "split" => false,
                    "packed" => true,
                    other => return Err(format!("--ring split|packed, not {other}")),
                }
            }
            "--depth" => args.depth = value()?.parse().map_err(|e| format!("--depth: {e}"))?,
            "--requests" => {
                args.requests = value()?.parse().map_err(|e| format!("--requests: {e}"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.depth == 0 || args.depth > RING / 4 {
        return Err(format!("--depth must be 1..={}", RING / 4));
    }
    Ok(args)
}

fn limits() -> Limits {
    Limits {
        logical_block_size: 512,
        physical_block_size: 4096,
        max_transfer_bytes: 1 << 20,
        max_segments: 62,
        max_segment_size: 1 << 20,
        read_only: false,
        flush: true,
        discard: None,
        write_zeroes: None,
    }
}

/// The fake device of either ring format.
enum Device {
    Split(FakeSplitDevice),
    Packed(FakePackedDevice),
}

impl Device {
    fn serve(&mut self, kind: Kind, scratch: &mut FakeChain) -> usize {
        match (self, kind) {
            (Device::Split(d), Kind::Blk) => serve_blk(d, scratch, 0),
            (Device::Split(d), Kind::Scsi) => serve_scsi(d, scratch),
            (Device::Packed(d), Kind::Blk) => serve_blk_packed(d, scratch, 0),
            (Device::Packed(d), Kind::Scsi) => serve_scsi_packed(d, scratch),
        }
    }
}

/// A queue of `depth` tags on a fresh ring, its fake device, and the unit to address.
fn build(kind: Kind, packed: bool, depth: u16, dma: &Arc<DmaSpace>) -> (AnyQueue, Device, Unit) {
    let shape = RingShape {
        packed,
        size: RING,
        indirect_max: 0,
        event_idx: true,
        depth,
        direct_chain: 1 + match kind {
            Kind::Blk => BLK_CHAIN_OVERHEAD,
            Kind::Scsi => SCSI_CHAIN_OVERHEAD,
        } as u16,
    };
    let ring = new_ring(dma, 0, shape).expect("a ring");
    let device = if packed {
        Device::Packed(FakePackedDevice::new(ring.addresses(), RING))
    } else {
        Device::Split(FakeSplitDevice::new(ring.addresses(), RING))
    };
    let notifier = QueueNotifier::detached(0);
    let (queue, unit) = match kind {
        Kind::Blk => {
            let slots = dma
                .alloc(usize::from(depth) * BLK_SLOT_SIZE)
                .expect("slots");
            let encoder = BlkEncoder::new(limits(), Arc::new(CAPACITY.into()));
            let q = HwQueue::new(0, ring, notifier, depth, slots, AnyEncoder::Blk(encoder));
            (q, Unit::of_fake_device(0))
        }
        Kind::Scsi => {
            let ring = ring.clamp_used_len();
            let table = Arc::new(UnitTable::default());
            let unit = table.add(UnitInfo {
                lun_field: [1, 0, 0x40, 0, 0, 0, 0, 0],
                limits: limits(),
                capacity: CAPACITY,
                use_16: false,
                fua: false,
                budget: depth,
                removed: false,
            });
            let slots = dma
                .alloc(usize::from(depth) * SCSI_SLOT_SIZE)
                .expect("slots");
            let zeroes = dma.alloc(4096).expect("zeroes").into_buf();
            let encoder = ScsiEncoder::new(table, 0, zeroes, 62);
            let q = HwQueue::new(0, ring, notifier, depth, slots, AnyEncoder::Scsi(encoder));
            (q, Unit::of_fake_device(unit))
        }
    };
    (queue, device, unit)
}

/// The driver's submission side: `depth` reads and one kick.
#[inline(never)]
fn hot_submit(
    queue: &mut AnyQueue<u64>,
    free: &mut Vec<DmaBuf>,
    unit: Unit,
    offset: &mut u64,
) -> Result<(), String> {
    while let Some(buf) = free.pop() {
        let request = Request::read(*offset, buf);
        let ctx = *offset;
        *offset = (*offset + BLOCK as u64) % CAPACITY;
        if let Err(rejected) = queue.submit(unit, request, ctx) {
            return Err(rejected.to_string());
        }
    }
    queue.kick();
    Ok(())
}

/// The driver's completion side: reap everything and take the buffers back.
#[inline(never)]
fn hot_reap(queue: &mut AnyQueue<u64>, free: &mut Vec<DmaBuf>) -> Result<usize, String> {
    let mut failed = None;
    let n = queue.poll(|done| {
        if let Err(e) = done.result {
            failed = Some(format!("read at {}: {e}", done.ctx));
        }
        if let Data::One(b) = done.data {
            free.push(b);
        }
    });
    failed.map_or(Ok(n), Err)
}

fn run(args: &Args) -> Result<(), String> {
    let dma = DmaSpace::identity();
    let (queue, mut device, unit) = build(args.kind, args.packed, args.depth, &dma);
    let mut queue = queue.with_context::<u64>();
    // Buffers with room for the status byte, as `uvio bench` carves them: a virtio-blk read
    // is then two descriptors (virtio-scsi ignores the room).
    let mut free = dma
        .alloc_bufs_with_status_room(usize::from(args.depth), BLOCK)
        .map_err(|e| e.to_string())?;
    let mut scratch = FakeChain::default();
    let mut offset = 0u64;
    let mut completed = 0u64;
    let start = Instant::now();
    while completed < args.requests {
        hot_submit(&mut queue, &mut free, unit, &mut offset)?;
        let served = device.serve(args.kind, &mut scratch);
        let reaped = hot_reap(&mut queue, &mut free)?;
        if reaped != served {
            return Err(format!(
                "the device completed {served}, the queue reaped {reaped}"
            ));
        }
        completed += reaped as u64;
    }
    let elapsed = start.elapsed();
    println!(
        "device={} ring={} depth={} requests={} ns_per_request={:.1}",
        match args.kind {
            Kind::Blk => "blk",
            Kind::Scsi => "scsi",
        },
        if args.packed { "packed" } else { "split" },
        args.depth,
        completed,
        elapsed.as_nanos() as f64 / completed as f64
    );
    Ok(())
}

fn main() {
    let result = parse_args().and_then(|a| run(&a));
    if let Err(e) = result {
        eprintln!("hot_path: {e}");
        std::process::exit(1);
    }
}
