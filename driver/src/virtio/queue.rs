//! What a device driver needs of a virtqueue, whatever its format: add a descriptor chain,
//! publish it, learn whether the device wants a notification, and pop validated completions.
//! The split ring implements it now; a packed ring can later without touching the devices.

use super::ring_core::RingCore;
use std::ptr::NonNull;

/// One buffer of a descriptor chain, by IOVA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub iova: u64,
    pub len: u32,
    /// The device writes this buffer (a read's data, a status byte); otherwise it reads it.
    pub device_writes: bool,
}

impl Segment {
    pub fn readable(iova: u64, len: u32) -> Self {
        Segment {
            iova,
            len,
            device_writes: false,
        }
    }

    pub fn writable(iova: u64, len: u32) -> Self {
        Segment {
            iova,
            len,
            device_writes: true,
        }
    }
}

/// Where an encoder puts a request's descriptor chain, buffer by buffer, in chain order:
/// straight into a ring slot (the split ring's [`SplitChain`](super::split::SplitChain), no
/// intermediate list) or into a list (`Vec<Segment>`).
pub trait ChainSink {
    fn push(&mut self, segment: Segment);
}

impl ChainSink for Vec<Segment> {
    #[inline]
    fn push(&mut self, segment: Segment) {
        Vec::push(self, segment);
    }
}

/// A completed chain, after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsedChain {
    /// The token given to [`Virtqueue::add`].
    pub token: u64,
    /// Bytes the device says it wrote into the chain's writable buffers.
    pub written: u32,
}

/// Why a chain could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddError {
    #[error("the virtqueue has no free descriptors for a chain of {0}")]
    Full(usize),
    #[error("a chain of {segments} buffers exceeds the queue's limit of {max}")]
    TooManySegments { segments: usize, max: usize },
    #[error("an empty descriptor chain")]
    Empty,
    #[error(transparent)]
    Broken(#[from] QueueFault),
}

/// Something the device wrote that no correct device writes. The queue stops: every later
/// call reports the same fault, and the device must be reset before the queue is used again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueFault {
    #[error("the device completed descriptor {id}, which is outside the ring of {size}")]
    IdOutOfRange { id: u32, size: u16 },
    #[error("the device completed descriptor {id}, which is not the head of a chain in flight (completed twice?)")]
    NotInFlight { id: u32 },
    #[error("the device claims {written} bytes written into chain {id}, whose writable buffers hold {capacity}")]
    LengthTooLong {
        id: u32,
        written: u32,
        capacity: u32,
    },
    #[error("the device moved the used index from {last} to {now}, more than the {in_flight} chains in flight")]
    IndexJump { last: u16, now: u16, in_flight: u16 },
    /// The device set DEVICE_NEEDS_RESET in its status: it met an error it cannot recover
    /// from (QEMU's `virtio_error`, a malformed request say) and stopped processing.
    #[error("the device set DEVICE_NEEDS_RESET: it stopped processing requests until it is reset")]
    DeviceNeedsReset,
}

/// Descriptor size and flags, the same in both ring formats (virtio 1.2, 2.7.5 and 2.8.10).
pub(crate) const DESC_SIZE: usize = 16;
pub(crate) const DESC_F_NEXT: u16 = 1;
pub(crate) const DESC_F_WRITE: u16 = 2;
pub(crate) const DESC_F_INDIRECT: u16 = 4;
/// The packed ring's AVAIL and USED flags (virtio 1.2, 2.8.1).
pub(crate) const DESC_F_AVAIL: u16 = 1 << 7;
pub(crate) const DESC_F_USED: u16 = 1 << 15;

/// The guest-side interface of one virtqueue.
pub trait Virtqueue: Send + std::fmt::Debug {
    /// Writes a chain into the ring without making it visible to the device yet.
    fn add(&mut self, segments: &[Segment], token: u64) -> Result<(), AddError>;
    /// Makes every chain added since the last call visible; returns whether the device asked
    /// to be notified.
    #[inline]
    fn publish(&mut self) -> bool {
        self.publish_up_to(u16::MAX)
    }
    /// Makes the `max` oldest chains not yet visible visible (all of them if fewer), in the
    /// order they were added; returns whether the device asked to be notified. The rest stay
    /// in the ring, invisible, for a later call: a caller can prepare requests ahead and
    /// release them as room frees up.
    fn publish_up_to(&mut self, max: u16) -> bool;
    /// Chains added but not yet published.
    fn unpublished(&self) -> u16;
    /// The next completed chain, `None` when there is none, or the fault that broke the queue.
    #[inline]
    fn pop_used(&mut self) -> Option<Result<UsedChain, QueueFault>> {
        if let Some(fault) = self.core().fault {
            return Some(Err(fault));
        }
        self.next_used()
    }
    /// The ring format's part of [`pop_used`](Self::pop_used), for a queue not broken yet:
    /// reads and checks the device's next used element.
    fn next_used(&mut self) -> Option<Result<UsedChain, QueueFault>>;
    /// What every ring format keeps: memory, layout, chains in flight, fault.
    fn core(&self) -> &RingCore;
    /// Chains added and not yet completed.
    #[inline]
    fn in_flight(&self) -> u16 {
        self.core().in_flight
    }
    /// The fault that broke this queue, if any.
    #[inline]
    fn fault(&self) -> Option<QueueFault> {
        self.core().fault
    }
    /// Ring size (entries).
    fn size(&self) -> u16 {
        self.core().size()
    }
    /// The IOVAs to program into the transport: descriptor area, driver area, device area.
    fn addresses(&self) -> QueueAddresses {
        let core = self.core();
        let layout = core.layout();
        QueueAddresses {
            descriptors: core.iova(),
            driver: core.iova() + layout.driver as u64,
            device: core.iova() + layout.device as u64,
        }
    }
}

/// Where a queue's three areas live, as the transport's queue registers want them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueAddresses {
    pub descriptors: u64,
    pub driver: u64,
    pub device: u64,
}

/// Memory shared with the device that a queue lives in: the DMA region in a real driver,
/// plain memory with a fake IOVA in unit tests.
///
/// # Safety
/// `ptr()..ptr()+len()` must stay allocated, writable and at the same address for as long as
/// the object lives, and `iova()` must be the device's address of `ptr()`: queues keep the
/// pointer and write rings through it.
pub unsafe trait SharedMemory: Send + Sync + std::fmt::Debug {
    fn ptr(&self) -> NonNull<u8>;
    fn iova(&self) -> u64;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// SAFETY: a region's memory stays mapped at its address (and for the device at its IOVA)
// until the region is dropped.
unsafe impl SharedMemory for crate::dma::DmaRegion {
    fn ptr(&self) -> NonNull<u8> {
        NonNull::new(self.as_ptr()).expect("a DMA region is never at address 0")
    }
    fn iova(&self) -> u64 {
        crate::dma::DmaRegion::iova(self)
    }
    fn len(&self) -> usize {
        crate::dma::DmaRegion::len(self)
    }
}
