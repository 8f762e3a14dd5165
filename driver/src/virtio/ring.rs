//! The virtqueue a hardware queue drives, dispatched statically: a `match` on the ring's
//! format instead of a call through a vtable on every add, publish and pop.

use super::queue::{AddError, QueueAddresses, QueueFault, Segment, UsedChain, Virtqueue};
use super::split::SplitQueue;

/// A request virtqueue of any format.
#[derive(Debug)]
pub enum Ring {
    Split(SplitQueue),
}

impl From<SplitQueue> for Ring {
    fn from(q: SplitQueue) -> Self {
        Ring::Split(q)
    }
}

macro_rules! each_ring {
    ($self:expr, $q:ident => $body:expr) => {
        match $self {
            Ring::Split($q) => $body,
        }
    };
}

impl Ring {
    /// The format's name, as `uvio info` and the bench report it.
    pub fn format(&self) -> &'static str {
        match self {
            Ring::Split(_) => "split",
        }
    }

    #[inline]
    pub fn add(&mut self, segments: &[Segment], token: u64) -> Result<(), AddError> {
        each_ring!(self, q => q.add(segments, token))
    }

    #[inline]
    pub fn publish(&mut self) -> bool {
        each_ring!(self, q => q.publish())
    }

    #[inline]
    pub fn pop_used(&mut self) -> Option<Result<UsedChain, QueueFault>> {
        each_ring!(self, q => q.pop_used())
    }

    pub fn in_flight(&self) -> u16 {
        each_ring!(self, q => q.in_flight())
    }

    #[inline]
    pub fn fault(&self) -> Option<QueueFault> {
        each_ring!(self, q => q.fault())
    }

    pub fn size(&self) -> u16 {
        each_ring!(self, q => q.size())
    }

    pub fn addresses(&self) -> QueueAddresses {
        each_ring!(self, q => q.addresses())
    }
}
