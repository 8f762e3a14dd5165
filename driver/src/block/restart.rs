//! Resetting a device and bringing it back with the same queues, as blk-mq keeps its tag set
//! across a controller reset: the device is reset (it stops and holds nothing), every
//! hardware queue fails what it had in flight and starts its ring over in the same memory,
//! the features are negotiated again, each ring is programmed into the device again, and the
//! device goes live. The callers' queues, tags and contexts carry on.

use std::time::{Duration, Instant};

use super::encoder::RequestEncoder;
use super::hwqueue::HwQueue;
use crate::virtio::pci::{TransportError, VirtioPciTransport};

/// A hardware queue of any encoder and context type, as a device restart handles it.
pub trait RestartQueue {
    /// The queue's index in its tag set.
    fn queue_index(&self) -> u16;
    /// See [`HwQueue::after_device_reset`].
    fn after_device_reset(&mut self) -> usize;
    /// See [`HwQueue::reattach`].
    fn reattach(&mut self, transport: &VirtioPciTransport) -> Result<(), TransportError>;
}

impl<E: RequestEncoder, Ctx> RestartQueue for HwQueue<E, Ctx> {
    fn queue_index(&self) -> u16 {
        self.index()
    }
    fn after_device_reset(&mut self) -> usize {
        HwQueue::after_device_reset(self)
    }
    fn reattach(&mut self, transport: &VirtioPciTransport) -> Result<(), TransportError> {
        HwQueue::reattach(self, transport)
    }
}

/// Why a device could not be brought back after a reset.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error(
        "a device reset needs every one of its {nr_hw_queues} hardware queues, and queues {missing:?} \
         are held elsewhere (another thread): stop their users first"
    )]
    MissingQueues {
        nr_hw_queues: u16,
        missing: Vec<u16>,
    },
    #[error("hardware queue {0} was given twice")]
    DuplicateQueue(u16),
    #[error("bringing the device back after its reset: {0}")]
    Transport(#[from] TransportError),
}

/// What a restart did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restarted {
    /// Requests in flight that failed with [`IoError::DeviceReset`](super::IoError::DeviceReset).
    pub failed: usize,
    /// From the reset to DRIVER_OK (the reset waits for what the device still held: QEMU
    /// drains its backend first).
    pub took: Duration,
}

impl std::fmt::Display for Restarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Restarted { failed, took } = *self;
        write!(
            f,
            "reset and restarted the device in {} ms ({failed} request{} in flight cut short)",
            took.as_millis(),
            if failed == 1 { "" } else { "s" }
        )
    }
}

/// Resets the device behind `transport` and brings it back with every hardware queue of its
/// tag set (`nr_hw_queues` of them, all in `queues`, each once). `own_queues` programs the
/// device type's other queues (virtio-scsi's control and event queues) before DRIVER_OK.
/// The queues must not be in use meanwhile: the caller holds them all.
pub fn restart_device<X: From<RestartError>>(
    transport: &mut VirtioPciTransport,
    queues: &mut [&mut dyn RestartQueue],
    nr_hw_queues: u16,
    own_queues: impl FnOnce(&VirtioPciTransport) -> Result<(), X>,
) -> Result<Restarted, X> {
    let mut seen = vec![false; usize::from(nr_hw_queues)];
    for q in queues.iter() {
        match seen.get_mut(usize::from(q.queue_index())) {
            Some(s) if *s => return Err(RestartError::DuplicateQueue(q.queue_index()).into()),
            Some(s) => *s = true,
            None => return Err(RestartError::DuplicateQueue(q.queue_index()).into()),
        }
    }
    let missing: Vec<u16> = (0..nr_hw_queues)
        .filter(|&i| !seen[usize::from(i)])
        .collect();
    if !missing.is_empty() {
        return Err(RestartError::MissingQueues {
            nr_hw_queues,
            missing,
        }
        .into());
    }
    let start = Instant::now();
    // Stopped first: only then may the queues give buffers back.
    transport.reset().map_err(RestartError::from)?;
    let failed = queues.iter_mut().map(|q| q.after_device_reset()).sum();
    transport.renegotiate().map_err(RestartError::from)?;
    for q in queues.iter_mut() {
        q.reattach(transport).map_err(RestartError::from)?;
    }
    own_queues(transport)?;
    transport.driver_ok().map_err(RestartError::from)?;
    Ok(Restarted {
        failed,
        took: start.elapsed(),
    })
}
