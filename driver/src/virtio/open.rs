//! The steps every virtio device type goes through when uvio opens it (virtio 1.2, 3.1.1):
//! open the PCI transport, check the device type, negotiate features (VERSION_1 and
//! ACCESS_PLATFORM required: uvio only drives modern devices behind an IOMMU), create the
//! DMA space and enable bus mastering. The device-type driver then reads its configuration,
//! sets up its queues and sets DRIVER_OK.

use std::sync::Arc;

use super::features::driver_features;
use super::pci::TransportError;
use super::ring::RingKind;
use super::{DeviceType, Features, VirtioPciTransport};
use crate::dma::{DmaError, DmaSpace};
use crate::pci::{PciAddress, PciFunction};

/// Why a virtio function could not be opened as the device type a driver wanted.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Dma(#[from] DmaError),
    #[error("{bdf} is a virtio {found} function, not virtio-{wanted}")]
    WrongType {
        bdf: PciAddress,
        found: String,
        wanted: String,
    },
}

/// A virtio function with its features negotiated and bus mastering on, not yet live
/// (no DRIVER_OK).
#[derive(Debug)]
pub struct OpenedVirtio {
    pub transport: VirtioPciTransport,
    pub features: Features,
    pub dma: Arc<DmaSpace>,
}

/// Opens `function` as a `wanted` device, offering the features uvio drives for that type
/// with the ring format `ring` asks for.
pub fn open_virtio(
    function: &PciFunction,
    wanted: DeviceType,
    ring: RingKind,
) -> Result<OpenedVirtio, OpenError> {
    let mut transport = VirtioPciTransport::open(function)?;
    if transport.device_type() != wanted {
        return Err(OpenError::WrongType {
            bdf: function.address,
            found: transport.device_type().name(),
            wanted: wanted.name(),
        });
    }
    let required = Features::VERSION_1 | Features::ACCESS_PLATFORM;
    let features = transport.negotiate(driver_features(wanted, ring), required)?;
    let dma = DmaSpace::new(Arc::clone(transport.vfio()))?;
    transport.enable_bus_master()?;
    Ok(OpenedVirtio {
        transport,
        features,
        dma,
    })
}
