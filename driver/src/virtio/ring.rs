//! The virtqueue a queue drives, dispatched statically: a `match` on the ring's format
//! instead of a call through a vtable on every add, publish and pop.

use super::packed::PackedQueue;
use super::queue::{AddError, QueueFault, Segment, UsedChain, Virtqueue};
use super::ring_core::RingCore;
use super::split::SplitQueue;

/// Which ring format a driver asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RingKind {
    /// The packed ring (VIRTIO_F_RING_PACKED) whenever the device offers it, as Linux does;
    /// the split ring otherwise.
    #[default]
    Auto,
    /// The split ring even when the device offers packed.
    Split,
}

impl std::str::FromStr for RingKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(RingKind::Auto),
            "split" => Ok(RingKind::Split),
            other => Err(format!(
                "ring `{other}`: auto (packed when the device offers it) or split"
            )),
        }
    }
}

/// A virtqueue of either format.
#[derive(Debug)]
pub enum Ring {
    Split(SplitQueue),
    Packed(PackedQueue),
}

impl From<SplitQueue> for Ring {
    fn from(q: SplitQueue) -> Self {
        Ring::Split(q)
    }
}

impl From<PackedQueue> for Ring {
    fn from(q: PackedQueue) -> Self {
        Ring::Packed(q)
    }
}

macro_rules! each_ring {
    ($self:expr, $q:ident => $body:expr) => {
        match $self {
            Ring::Split($q) => $body,
            Ring::Packed($q) => $body,
        }
    };
}

impl Ring {
    /// The same ring, clamping used lengths beyond a chain's writable buffers instead of
    /// breaking (virtio-scsi; see [`RingCore::check_written`]).
    pub fn clamp_used_len(mut self) -> Self {
        match &mut self {
            Ring::Split(q) => q.core.clamp_used_len = true,
            Ring::Packed(q) => q.core.clamp_used_len = true,
        }
        self
    }

    /// Starts over with an empty ring in the same memory, after the device was reset (see
    /// [`SplitQueue::restart`]).
    pub fn restart(&mut self) {
        each_ring!(self, q => q.restart())
    }

    /// Breaks the queue with `fault` found outside the ring (the device's status): every
    /// later operation reports it, until a [`restart`](Self::restart).
    pub fn break_with(&mut self, fault: QueueFault) {
        let core = each_ring!(self, q => &mut q.core);
        if core.fault.is_none() {
            core.fault = Some(fault);
        }
    }

    /// Fault injection (see [`SplitQueue::set_head_len`]); split rings only.
    #[doc(hidden)]
    pub fn set_head_len(&mut self, slot: u16, len: u32) -> bool {
        match self {
            Ring::Split(q) => q.set_head_len(slot, len),
            Ring::Packed(_) => false,
        }
    }

    /// Of `held` chains the device was notified of and the driver has not reaped, how many
    /// it may still be working on, as far as a cheap look tells. A split ring subtracts the
    /// completions its used index shows; a packed ring has no count, and says 0 when the
    /// used descriptor of the newest notified chain shows that all of them are done
    /// ([`PackedQueue::notified_all_used`]), `held` otherwise.
    #[inline]
    pub fn still_held(&self, held: u64) -> u64 {
        match self {
            Ring::Split(q) => held.saturating_sub(u64::from(q.used_unreaped())),
            Ring::Packed(q) if q.notified_all_used() => 0,
            Ring::Packed(_) => held,
        }
    }

    /// Completions the device has put in the ring and the driver has not reaped, up to
    /// `max`: a split ring's used index counts them (at most the chains the device can
    /// see); a packed ring walks its used descriptors' flags
    /// ([`PackedQueue::used_ready`]). Nothing is consumed or checked: a bad index reads as
    /// at most what the device could have completed, and reaping reports it.
    #[inline]
    pub fn used_ready(&self, max: u16) -> u16 {
        match self {
            Ring::Split(q) => q.used_unreaped().min(max),
            Ring::Packed(q) => q.used_ready(max),
        }
    }

    /// Whether a packed ring keeps track of the newest chain the device was notified of,
    /// for [`still_held`](Self::still_held) (a few instructions per publish and
    /// completion, paid only by a caller that holds doorbells back).
    pub fn track_notified(&mut self, on: bool) {
        if let Ring::Packed(q) = self {
            q.track_notified(on);
        }
    }

    /// Records that the device was just notified of every published chain (for
    /// [`still_held`](Self::still_held) on a packed ring).
    #[inline]
    pub fn mark_notified(&mut self) {
        if let Ring::Packed(q) = self {
            q.mark_notified();
        }
    }

    /// The format's name, as `uvio info` and the bench report it.
    pub fn format(&self) -> &'static str {
        match self {
            Ring::Split(_) => "split",
            Ring::Packed(_) => "packed",
        }
    }
}

impl Virtqueue for Ring {
    #[inline]
    fn add(&mut self, segments: &[Segment], token: u64) -> Result<(), AddError> {
        each_ring!(self, q => q.add(segments, token))
    }

    #[inline]
    fn publish_up_to(&mut self, max: u16) -> bool {
        each_ring!(self, q => q.publish_up_to(max))
    }

    #[inline]
    fn unpublished(&self) -> u16 {
        each_ring!(self, q => q.unpublished())
    }

    #[inline]
    fn pop_used(&mut self) -> Option<Result<UsedChain, QueueFault>> {
        each_ring!(self, q => q.pop_used())
    }

    #[inline]
    fn next_used(&mut self) -> Option<Result<UsedChain, QueueFault>> {
        each_ring!(self, q => q.next_used())
    }

    #[inline]
    fn core(&self) -> &RingCore {
        each_ring!(self, q => q.core())
    }
}
