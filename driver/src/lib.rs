//! uvio: a userspace, polled virtio-blk / virtio-scsi driver for Linux guests, over VFIO.
//!
//! Layers, top-down as the tools use them: [`binding`] hands PCI functions between kernel
//! drivers and vfio-pci; [`pci`] reads what sysfs knows of a function; [`vfio`] opens it and
//! maps its BARs and DMA memory; [`virtio`] speaks the modern PCI transport; [`blk`] and
//! [`scsi`] know their device configurations; [`scsi_proto`] is the SCSI protocol itself
//! (CDBs, sense, LUNs, reply parsers), a leaf that depends on nothing else here.
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod binding;
pub mod blk;
pub mod block;
pub mod device;
pub mod dma;
pub mod pci;
pub mod scsi;
pub mod scsi_proto;
pub mod vfio;
pub mod virtio;
