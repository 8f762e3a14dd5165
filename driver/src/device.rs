//! Opening what a user names as a DEVICE: a virtio-blk function by its BDF, or a disk LUN
//! of a virtio-scsi host as `BDF/C:T:L` (for example `0000:00:04.0/0:2:5`).
//!
//! The one module that knows both device kinds. Their encoders meet in [`AnyEncoder`], so
//! one hardware-queue type, [`AnyQueue`], serves either: a tool drives a disk without
//! knowing which kind it is. The block layer below knows neither.

use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::blk::encoder::BlkEncoder;
use crate::blk::{BlkError, BlkOptions, VirtioBlk};
use crate::block::{
    BlockDevice, HwQueue, IoError, RequestEncoder, RestartQueue, Restarted, TagRequest, TagSet,
    Unit,
};
use crate::dma::DmaSpace;
use crate::pci::{PciAddress, PciError, Sysfs};
use crate::scsi::encoder::{wire_tag, ScsiEncoder};
use crate::scsi::host::{Escalation, HostEvent, ScsiHostError, ScsiOptions, VirtioScsiHost};
use crate::scsi::passthrough::ScsiPassthrough;
use crate::virtio::plan::DepthRequest;
use crate::virtio::queue::ChainSink;
use crate::virtio::ring::RingKind;
use crate::virtio::DeviceType;

/// A DEVICE as a user writes it: a PCI function, and for a virtio-scsi host the LUN as
/// `C:T:L`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAddress {
    pub bdf: PciAddress,
    pub lun: Option<(u16, u16, u16)>,
}

/// The largest target a virtio-scsi LUN address carries (one byte).
pub const MAX_TARGET: u16 = 255;

/// The largest LUN a DEVICE may name: a flat-space LUN (0..=16383) as addressed, or Linux's
/// integer for one (up to 0x7fff), as `uvio scan` lists them.
pub const MAX_LUN: u16 = 0x7fff;

/// Why a DEVICE string does not name a device.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("`{0}` is not a LUN address: expected C:T:L, for example 0:2:5")]
    NotALun(String),
    #[error("`{address}`: {what} {value} is out of range ({range})")]
    OutOfRange {
        address: String,
        what: &'static str,
        value: String,
        range: String,
    },
    #[error(transparent)]
    Pci(#[from] PciError),
}

impl FromStr for DeviceAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        let (bdf, lun) = match s.split_once('/') {
            Some((bdf, ctl)) => {
                let bad = || AddressError::NotALun(ctl.to_string());
                let mut parts = ctl.split(':');
                let (Some(c), Some(t), Some(l), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad());
                };
                // Digits only (no sign, no blanks), then the range of each part.
                let field = |text: &str, what: &'static str, max: u16, range: &str| {
                    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad());
                    }
                    match text.parse::<u64>() {
                        Ok(v) if v <= u64::from(max) => Ok(v as u16),
                        _ => Err(AddressError::OutOfRange {
                            address: ctl.to_string(),
                            what,
                            value: text.to_string(),
                            range: range.to_string(),
                        }),
                    }
                };
                let c = field(c, "channel", u16::MAX, "virtio-scsi has only channel 0")?;
                let t = field(t, "target", MAX_TARGET, "0 to 255")?;
                let l = field(
                    l,
                    "LUN",
                    MAX_LUN,
                    "0 to 16383, or Linux's number for it up to 32767",
                )?;
                (bdf, Some((c, t, l)))
            }
            None => (s, None),
        };
        Ok(DeviceAddress {
            bdf: bdf.parse()?,
            lun,
        })
    }
}

impl std::fmt::Display for DeviceAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.lun {
            Some((c, t, l)) => write!(f, "{}/{c}:{t}:{l}", self.bdf),
            None => self.bdf.fmt(f),
        }
    }
}

/// The encoder of either device kind, dispatched by `match` (no vtable on the hot path).
#[derive(Debug)]
pub enum AnyEncoder {
    Blk(BlkEncoder),
    Scsi(ScsiEncoder),
}

/// A hardware queue of either device kind.
pub type AnyQueue<Ctx = ()> = HwQueue<AnyEncoder, Ctx>;

macro_rules! each_encoder {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            AnyEncoder::Blk($e) => $body,
            AnyEncoder::Scsi($e) => $body,
        }
    };
}

/// A SCSI command meant for a virtio-blk queue: refused, since virtio-blk has no such path.
fn blk_command(command: Option<&ScsiPassthrough>) -> Result<Option<&Infallible>, IoError> {
    match command {
        Some(_) => Err(IoError::NotSupported {
            op: "a SCSI command on virtio-blk",
        }),
        None => Ok(None),
    }
}

impl RequestEncoder for AnyEncoder {
    type Command = ScsiPassthrough;

    fn slot_size(&self) -> usize {
        each_encoder!(self, e => e.slot_size())
    }

    fn max_chain(&self) -> usize {
        each_encoder!(self, e => e.max_chain())
    }

    #[inline]
    fn encode(
        &mut self,
        at: TagRequest<'_, Self::Command>,
        segments: &mut impl ChainSink,
    ) -> Result<(), IoError> {
        match self {
            AnyEncoder::Blk(e) => e.encode(at.with_command(blk_command(at.command)?), segments),
            AnyEncoder::Scsi(e) => e.encode(at, segments),
        }
    }

    #[inline]
    fn decode(&mut self, at: TagRequest<'_, Self::Command>, written: u32) -> Result<u64, IoError> {
        match self {
            AnyEncoder::Blk(e) => e.decode(at.with_command(None), written),
            AnyEncoder::Scsi(e) => e.decode(at, written),
        }
    }

    fn retryable(&self, error: &IoError) -> bool {
        each_encoder!(self, e => e.retryable(error))
    }

    fn abort(&mut self, unit: Unit, command: Option<&Self::Command>) {
        match self {
            AnyEncoder::Blk(e) => e.abort(unit, None),
            AnyEncoder::Scsi(e) => e.abort(unit, command),
        }
    }
}

/// How to set up the device's queues.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Hardware queues to use (at most what the device has); default: all.
    pub queues: Option<u16>,
    /// Tags per queue (see [`DepthRequest`]).
    pub depth: DepthRequest,
    /// The ring format: packed when the device offers it (the default), or split.
    pub ring: RingKind,
    /// How long one request may take (see [`HwQueue::set_request_timeout`]); default 30 s.
    pub timeout: Option<Duration>,
}

/// Why a DEVICE could not be opened for block I/O.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(transparent)]
    Pci(#[from] PciError),
    #[error(transparent)]
    Blk(#[from] BlkError),
    #[error(transparent)]
    Scsi(#[from] ScsiHostError),
    #[error("{0} is virtio-blk: name it without a LUN")]
    BlkWithLun(PciAddress),
    #[error("{address}: {} is virtio-blk, a single disk: name it once, without a LUN", address.bdf)]
    OtherLunOfBlk { address: DeviceAddress },
    #[error("virtio-scsi has only channel 0, not {0}")]
    NoSuchChannel(u16),
    #[error("{0} is a virtio-scsi host: name a LUN as {0}/C:T:L (see `uvio scan {0}`)")]
    HostWithoutLun(PciAddress),
    #[error("{0} is a virtio-scsi host: name a LUN as {0}/C:T:L")]
    OtherLunWithoutLun(PciAddress),
    #[error("{bdf} is a virtio-{name} function; block I/O needs virtio-blk or virtio-scsi")]
    NotBlock { bdf: PciAddress, name: String },
    #[error("{0} is not a virtio function")]
    NotVirtio(PciAddress),
}

/// What keeps the device open (dropping it resets the device).
#[derive(Debug)]
enum Kept {
    Blk(#[allow(dead_code)] Box<VirtioBlk>),
    /// The host, and the target and LUN (on channel 0) that was opened.
    Scsi(Box<VirtioScsiHost>, (u16, u16)),
}

/// An open disk: its description, all its hardware queues (for the caller's threads to
/// take) and its DMA space. Drop the queues before the device.
#[derive(Debug)]
pub struct OpenedDevice {
    pub device: BlockDevice,
    pub queues: Vec<AnyQueue>,
    pub dma: Arc<DmaSpace>,
    kept: Kept,
}

/// What was done about a request that timed out ([`OpenedDevice::recover`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// A virtio-scsi LUN: the step of the SCSI error handler's escalation that succeeded,
    /// for the command with this wire tag.
    Scsi { step: Escalation, wire_tag: u64 },
    /// virtio-blk has no finer step: the device is reset when it is closed.
    DeviceReset,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recovery::DeviceReset => f.write_str("the device is reset as it closes"),
            Recovery::Scsi {
                step: Escalation::NeedsHostReset,
                wire_tag,
            } => write!(
                f,
                "no task management function recovered tag {wire_tag:#x}; the device is reset \
                 as it closes"
            ),
            Recovery::Scsi { step, wire_tag } => write!(
                f,
                "recovered by {step} (tag {wire_tag:#x}); the device is reset as it closes"
            ),
        }
    }
}

impl OpenedDevice {
    /// Recovers a request of this device that timed out on queue `queue_index` under
    /// `tag`: for a SCSI LUN, ABORT TASK, then LOGICAL UNIT RESET, then I_T NEXUS RESET
    /// (see [`VirtioScsiHost::escalate`]); virtio-blk can only be reset.
    pub fn recover(&mut self, queue_index: u16, tag: u16) -> Recovery {
        let lun = match &self.kept {
            Kept::Scsi(_, (target, lun)) => Some((*target, *lun)),
            Kept::Blk(_) => None,
        };
        self.recover_lun(lun, queue_index, tag)
    }

    /// As [`recover`](Self::recover), for a request of LUN 0:`target`:`lun` of the same host
    /// (one that [`other_lun`](Self::other_lun) opened); `None` on virtio-blk.
    pub fn recover_lun(&mut self, lun: Option<(u16, u16)>, queue_index: u16, tag: u16) -> Recovery {
        match (&mut self.kept, lun) {
            (Kept::Scsi(host, _), Some((target, lun))) => Recovery::Scsi {
                step: host.escalate(target, lun, queue_index, tag),
                wire_tag: wire_tag(queue_index, tag),
            },
            _ => Recovery::DeviceReset,
        }
    }

    /// Resets the device and brings it back in place: same features, same hardware queues
    /// (their tags, records and contexts carry on), rings started over. Every request in
    /// flight fails with [`IoError::DeviceReset`], its buffers back. `given` are the queues
    /// the caller took (any context type); with the ones still in [`queues`](Self::queues)
    /// they must be all of the device's. Then [`revalidate`](Self::revalidate). For a device
    /// that set DEVICE_NEEDS_RESET or broke a queue ([`HwQueue::needs_device_reset`]), or a
    /// virtio-blk request past its deadline.
    pub fn restart<Ctx: Default>(
        &mut self,
        given: &mut [&mut AnyQueue<Ctx>],
    ) -> Result<Restarted, DeviceError> {
        let mut all: Vec<&mut dyn RestartQueue> = Vec::new();
        for q in self.queues.iter_mut() {
            all.push(q);
        }
        for q in given.iter_mut() {
            all.push(&mut **q);
        }
        let restarted = match &mut self.kept {
            Kept::Blk(disk) => disk.restart(&mut all)?,
            Kept::Scsi(host, _) => host.restart(&mut all)?,
        };
        Ok(restarted)
    }

    /// Revalidates the device after [`restart`](Self::restart), through `queue`: a
    /// virtio-scsi host's disk LUNs learn their capacity and limits again, as sd does after
    /// a host reset (virtio-blk keeps its configuration across a reset: nothing to do).
    /// The requests the restart cut short hold their tags until they are handed out: poll
    /// them out of `queue` first, or the revalidation finds no free tag. Returns the LUNs
    /// that changed.
    pub fn revalidate<Ctx: Default>(&mut self, queue: &mut AnyQueue<Ctx>) -> Vec<HostEvent> {
        match &mut self.kept {
            Kept::Blk(_) => Vec::new(),
            Kept::Scsi(host, _) => host.revalidate_through(queue),
        }
    }

    fn new(device: BlockDevice, queues: Vec<AnyQueue>, dma: Arc<DmaSpace>, kept: Kept) -> Self {
        OpenedDevice {
            device,
            queues,
            dma,
            kept,
        }
    }

    /// Another disk LUN of the same virtio-scsi host, sharing its queues.
    pub fn other_lun(&self, address: DeviceAddress) -> Result<BlockDevice, DeviceError> {
        match (&self.kept, address.lun) {
            (Kept::Scsi(host, _), Some((0, t, l))) => Ok(host.disk(t, l)?),
            (Kept::Scsi(..), Some((channel, _, _))) => Err(DeviceError::NoSuchChannel(channel)),
            (Kept::Scsi(..), None) => Err(DeviceError::OtherLunWithoutLun(address.bdf)),
            (Kept::Blk(_), _) => Err(DeviceError::OtherLunOfBlk { address }),
        }
    }
}

/// Opens the disk `address` names: a virtio-blk function, or a disk LUN of a virtio-scsi
/// host (whose other LUNs [`OpenedDevice::other_lun`] reaches).
pub fn open(address: DeviceAddress, options: &OpenOptions) -> Result<OpenedDevice, DeviceError> {
    let (bdf, timeout) = (address.bdf, options.timeout);
    let function = Sysfs::system().pci_function(bdf)?;
    match (DeviceType::of(&function), address.lun) {
        (Some(DeviceType::Block), None) => {
            let options = BlkOptions {
                queues: options.queues,
                depth: options.depth,
                ring: options.ring,
                ..Default::default()
            };
            let mut disk = VirtioBlk::open(&function, &options)?;
            if let Some(timeout) = timeout {
                disk.tag_set().set_timeouts(timeout);
            }
            let device = disk.block_device().clone();
            let queues = wrap(disk.tag_set(), AnyEncoder::Blk, |never| match never {});
            let dma = Arc::clone(disk.dma());
            Ok(OpenedDevice::new(
                device,
                queues,
                dma,
                Kept::Blk(Box::new(disk)),
            ))
        }
        (Some(DeviceType::Block), Some(_)) => Err(DeviceError::BlkWithLun(bdf)),
        (Some(DeviceType::Scsi), Some((channel, t, l))) => {
            if channel != 0 {
                return Err(DeviceError::NoSuchChannel(channel));
            }
            let options = ScsiOptions {
                queues: options.queues,
                queue_size: None,
                timeout: options.timeout,
                depth: options.depth,
                ring: options.ring,
            };
            let mut host = VirtioScsiHost::open(&function, &options)?;
            let device = host.disk(t, l)?;
            let queues = wrap(host.tag_set(), AnyEncoder::Scsi, |command| command);
            let dma = Arc::clone(host.dma());
            let kept = Kept::Scsi(Box::new(host), (t, l));
            Ok(OpenedDevice::new(device, queues, dma, kept))
        }
        (Some(DeviceType::Scsi), None) => Err(DeviceError::HostWithoutLun(bdf)),
        (Some(other), _) => Err(DeviceError::NotBlock {
            bdf,
            name: other.name(),
        }),
        (None, _) => Err(DeviceError::NotVirtio(bdf)),
    }
}

/// All the queues of one device kind's tag set, as [`AnyQueue`]s.
fn wrap<E: RequestEncoder>(
    tag_set: &mut TagSet<E>,
    encoder: impl Fn(E) -> AnyEncoder,
    command: impl Fn(E::Command) -> ScsiPassthrough,
) -> Vec<AnyQueue> {
    tag_set
        .take_all()
        .into_iter()
        .map(|q| q.with_encoder(&encoder, &command))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_functions_and_luns() {
        let t: DeviceAddress = "0000:00:04.0/0:2:5".parse().unwrap();
        assert_eq!(t.lun, Some((0, 2, 5)));
        assert_eq!(t.to_string(), "0000:00:04.0/0:2:5");
        let b: DeviceAddress = "00:05.0".parse().unwrap();
        assert_eq!(b.lun, None);
        assert_eq!(b.to_string(), "0000:00:05.0");
        for bad in [
            "0000:00:04.0/0:2",
            "0000:00:04.0/0:x:1",
            "0000:00:04.0/0:1:2:3",
        ] {
            let e = bad.parse::<DeviceAddress>().unwrap_err();
            assert!(e.to_string().contains("is not a LUN address"), "{bad}: {e}");
        }
    }

    #[test]
    fn out_of_range_lun_addresses_give_the_range() {
        let t: DeviceAddress = "0000:00:04.0/0:255:32767".parse().unwrap();
        assert_eq!(t.lun, Some((0, 255, 32767)));
        for (bad, expect) in [
            (
                "0000:00:04.0/0:1:99999",
                "`0:1:99999`: LUN 99999 is out of range (0 to 16383, or Linux's number for it \
                 up to 32767)",
            ),
            (
                "0000:00:04.0/0:256:0",
                "`0:256:0`: target 256 is out of range (0 to 255)",
            ),
            (
                "0000:00:04.0/0:1:99999999999999999999999",
                "LUN 99999999999999999999999 is out of range",
            ),
            (
                "0000:00:04.0/70000:0:0",
                "channel 70000 is out of range (virtio-scsi has only channel 0)",
            ),
        ] {
            let e = bad.parse::<DeviceAddress>().unwrap_err().to_string();
            assert!(e.contains(expect), "{bad}: {e}");
        }
        for bad in [
            "0000:00:04.0/0:1:+5",
            "0000:00:04.0/0: 1:5",
            "0000:00:04.0/0::5",
        ] {
            let e = bad.parse::<DeviceAddress>().unwrap_err().to_string();
            assert!(e.contains("is not a LUN address"), "{bad}: {e}");
        }
    }
}
