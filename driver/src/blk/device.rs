//! A virtio-blk disk driven from userspace: negotiation, queues, limits, serial, resize.

use std::sync::Arc;

use super::config::{blk_config_fields, BlkConfig, ShortBlkConfig};
use super::encoder::{BlkEncoder, BLK_CHAIN_OVERHEAD, BLK_ID_BYTES};
use crate::block::device::{RangeOpLimits, DEFAULT_MAX_TRANSFER};
use crate::block::{
    restart_device, BlockDevice, Limits, Request, RestartError, RestartQueue, Restarted, TagSet,
    Unit,
};
use crate::dma::{DmaError, DmaSpace};
use crate::pci::PciFunction;
use crate::vfio::RemovalSignal;
use crate::virtio::open::{open_virtio, OpenError, OpenedVirtio};
use crate::virtio::pci::TransportError;
use crate::virtio::plan::{DepthRequest, QueuePlan, QueueSetupError};
use crate::virtio::ring::RingKind;
use crate::virtio::{DeviceType, Features, VirtioPciTransport};

/// Errors from opening a virtio-blk disk.
#[derive(Debug, thiserror::Error)]
pub enum BlkError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Dma(#[from] DmaError),
    #[error(transparent)]
    Config(#[from] ShortBlkConfig),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Queue(#[from] QueueSetupError),
    #[error(transparent)]
    Restart(#[from] RestartError),
}

/// How to set up the disk.
#[derive(Debug, Clone, Default)]
pub struct BlkOptions {
    /// Hardware queues to use (at most what the device has); default: all.
    pub queues: Option<u16>,
    /// Ring entries per queue (a power of two, at most what the device takes); default 256.
    pub queue_size: Option<u16>,
    /// Tags per queue (see [`DepthRequest`]); default: the ring size.
    pub depth: DepthRequest,
    /// Largest read or write per request; default [`DEFAULT_MAX_TRANSFER`].
    pub max_transfer: Option<u64>,
    /// The ring format: packed when the device offers it (the default), or split.
    pub ring: RingKind,
}

/// An open virtio-blk disk. Its hardware queues live in [`tag_set`](Self::tag_set) until
/// threads take them. Dropping the disk resets the device.
#[derive(Debug)]
pub struct VirtioBlk {
    // Dropped first: the device is reset before the queues' memory is unmapped.
    transport: VirtioPciTransport,
    tag_set: TagSet<BlkEncoder>,
    dma: Arc<DmaSpace>,
    features: Features,
    config: BlkConfig,
    device: BlockDevice,
    generation: u8,
}

impl VirtioBlk {
    pub fn open(function: &PciFunction, options: &BlkOptions) -> Result<Self, BlkError> {
        let bdf = function.address;
        let OpenedVirtio {
            transport,
            features,
            dma,
        } = open_virtio(function, DeviceType::Block, options.ring)?;
        let generation = transport.config_generation()?;
        let config = BlkConfig::parse(
            &transport.read_device_config(&blk_config_fields(features))?,
            features,
        )?;

        let has = |f: Features| features.contains(f);
        let device_queues = if has(Features::BLK_MQ) {
            config.num_queues.max(1)
        } else {
            1
        };
        let nr_queues = options
            .queues
            .unwrap_or(device_queues)
            .clamp(1, device_queues);
        let plan = QueuePlan::new(
            &transport,
            0,
            nr_queues,
            options.queue_size,
            options.depth,
            BLK_CHAIN_OVERHEAD,
        )?;
        let limits = Self::limits(&config, features, plan.segment_budget, options);
        let capacity = config.capacity.saturating_mul(512);
        let mut device = BlockDevice::new(bdf.to_string(), capacity, limits.clone());
        let mut tag_set =
            TagSet::build(&plan, &transport, &dma, limits.max_segments, false, |_| {
                Ok(BlkEncoder::new(limits.clone(), device.capacity_handle()))
            })?;
        transport.driver_ok()?;
        device.nr_hw_queues = tag_set.nr_hw_queues();
        device.queue_depth = tag_set.queue_depth();
        device.write_cache = if has(Features::BLK_CONFIG_WCE) {
            config.writeback != 0
        } else {
            has(Features::BLK_FLUSH)
        };
        device.serial = Self::read_serial(&dma, &mut tag_set);
        Ok(VirtioBlk {
            transport,
            tag_set,
            dma,
            features,
            config,
            device,
            generation,
        })
    }

    /// Request limits from the configuration; `segment_budget` is the most data segments a
    /// chain may have given the ring (header and status excluded).
    fn limits(
        config: &BlkConfig,
        features: Features,
        segment_budget: usize,
        options: &BlkOptions,
    ) -> Limits {
        let has = |f: Features| features.contains(f);
        let logical = if has(Features::BLK_BLK_SIZE)
            && config.blk_size.is_power_of_two()
            && (512..=65536).contains(&config.blk_size)
        {
            config.blk_size
        } else {
            512
        };
        // Physical blocks of up to 1 MiB; anything larger is a device error, ignored.
        let physical = match logical.checked_shl(u32::from(config.physical_block_exp)) {
            Some(p) if has(Features::BLK_TOPOLOGY) && p <= 1 << 20 => p,
            _ => logical,
        };
        let max_segments = if has(Features::BLK_SEG_MAX) {
            (config.seg_max as usize).clamp(1, segment_budget.max(1))
        } else {
            1
        };
        let max_segment_size = if has(Features::BLK_SIZE_MAX) && config.size_max >= 512 {
            config.size_max
        } else {
            0xffff_f000
        };
        let max_transfer = options
            .max_transfer
            .unwrap_or(DEFAULT_MAX_TRANSFER)
            .min(max_segments as u64 * u64::from(max_segment_size))
            .max(u64::from(logical));
        let range_limits = |max_sectors: Option<u32>, alignment_sectors: Option<u32>| {
            let max_sectors = max_sectors.filter(|&s| s > 0).unwrap_or(u32::MAX);
            RangeOpLimits {
                max_bytes: (u64::from(max_sectors) * 512) / u64::from(logical) * u64::from(logical),
                alignment: alignment_sectors
                    .unwrap_or(0)
                    .saturating_mul(512)
                    .max(logical),
            }
        };
        Limits {
            logical_block_size: logical,
            physical_block_size: physical,
            max_transfer_bytes: max_transfer / u64::from(logical) * u64::from(logical),
            max_segments,
            max_segment_size,
            read_only: has(Features::BLK_RO),
            flush: has(Features::BLK_FLUSH),
            discard: has(Features::BLK_DISCARD)
                .then(|| range_limits(config.max_discard_sectors, config.discard_sector_alignment)),
            write_zeroes: has(Features::BLK_WRITE_ZEROES)
                .then(|| range_limits(config.max_write_zeroes_sectors, None)),
        }
    }

    /// The serial number (GET_ID), if the device has one.
    fn read_serial(dma: &Arc<DmaSpace>, tag_set: &mut TagSet<BlkEncoder>) -> Option<String> {
        let buf = dma.alloc(4096).ok()?.into_buf();
        let mut queue = tag_set.take_queue(0)?;
        let (result, data) = queue.run_one(Unit::ONLY, Request::get_id(buf));
        tag_set.return_queue(queue);
        result.ok()?;
        let crate::block::Data::One(buf) = data else {
            return None;
        };
        let id = &buf.as_slice()[..BLK_ID_BYTES];
        let end = id.iter().position(|&b| b == 0).unwrap_or(BLK_ID_BYTES);
        let serial = String::from_utf8_lossy(&id[..end]).trim().to_string();
        (!serial.is_empty()).then_some(serial)
    }

    pub fn block_device(&self) -> &BlockDevice {
        &self.device
    }

    pub fn features(&self) -> Features {
        self.features
    }

    pub fn config(&self) -> &BlkConfig {
        &self.config
    }

    /// Resets the disk and brings it back with the same features and hardware queues (all
    /// of them in `queues`): what was in flight fails as cut short by the reset (see
    /// [`restart_device`]). For a device that set DEVICE_NEEDS_RESET, broke a queue, or
    /// left a request past its deadline.
    pub fn restart(&mut self, queues: &mut [&mut dyn RestartQueue]) -> Result<Restarted, BlkError> {
        let nr = self.device.nr_hw_queues;
        restart_device(&mut self.transport, queues, nr, |_| Ok::<(), BlkError>(()))
    }

    pub fn tag_set(&mut self) -> &mut TagSet<BlkEncoder> {
        &mut self.tag_set
    }

    /// The DMA space, for allocating I/O buffers.
    pub fn dma(&self) -> &Arc<DmaSpace> {
        &self.dma
    }

    /// Raised when the kernel asks for the function back (hot-unplug): stop, fail what is in
    /// flight and drop the disk. `None` when the kernel offers no request interrupt.
    pub fn removal(&self) -> Option<&RemovalSignal> {
        self.transport.removal()
    }

    /// Re-reads the configuration if the device changed it (a resize, say) and applies the
    /// new capacity to every queue. Returns whether anything changed.
    pub fn refresh_config(&mut self) -> Result<bool, BlkError> {
        self.transport.check_status()?;
        let generation = self.transport.config_generation()?;
        if generation == self.generation {
            return Ok(false);
        }
        let fields = blk_config_fields(self.features);
        let config = BlkConfig::parse(&self.transport.read_device_config(&fields)?, self.features)?;
        self.generation = generation;
        self.device
            .set_capacity(config.capacity.saturating_mul(512));
        let changed = config != self.config;
        self.config = config;
        Ok(changed)
    }
}

impl Drop for VirtioBlk {
    fn drop(&mut self) {
        self.transport.stop(&self.dma);
    }
}
