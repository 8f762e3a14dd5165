//! What the IOMMU behind a VFIO container accepts: page sizes, the usable IOVA ranges and
//! the DMA mapping budget, parsed from `VFIO_IOMMU_GET_INFO`'s reply and capability chain.

use std::ops::Range;

use vfio_bindings::bindings::vfio as sys;

use super::VfioError;

/// What the IOMMU behind a container accepts.
#[derive(Debug, Clone)]
pub struct IommuInfo {
    /// Bitmap of the supported IOMMU page sizes; the lowest set bit is the mapping granule.
    pub page_sizes: u64,
    /// Usable IOVA ranges (inclusive start, exclusive end), sorted.
    pub iova_ranges: Vec<Range<u64>>,
    /// How many more DMA mappings the container accepts, when the kernel says.
    pub dma_mappings_available: Option<u32>,
}

impl IommuInfo {
    /// The smallest page the IOMMU maps (4 KiB on x86).
    pub fn page_size(&self) -> u64 {
        if self.page_sizes == 0 {
            4096
        } else {
            1 << self.page_sizes.trailing_zeros()
        }
    }
}

/// Parses a `vfio_iommu_type1_info` reply with its capability chain.
pub(super) fn parse_iommu_info(bytes: &[u8]) -> Result<IommuInfo, VfioError> {
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
    };
    let bad = |what: &str| VfioError::Region {
        index: u32::MAX,
        what: format!("IOMMU info: {what}"),
    };

    let flags = u32_at(4).ok_or_else(|| bad("truncated"))?;
    let page_sizes = if flags & sys::VFIO_IOMMU_INFO_PGSIZES != 0 {
        u64_at(8).unwrap_or(0)
    } else {
        0
    };
    let mut iova_ranges = Vec::new();
    let mut dma_mappings_available = None;
    if flags & sys::VFIO_IOMMU_INFO_CAPS != 0 {
        let mut offset = u32_at(16).ok_or_else(|| bad("truncated"))? as usize;
        let mut hops = 0;
        while offset != 0 {
            hops += 1;
            if hops > 64 || offset < 24 {
                return Err(bad("capability chain loops or points into the header"));
            }
            let id = u16_at(offset).ok_or_else(|| bad("capability past the end"))?;
            let next = u32_at(offset + 4).ok_or_else(|| bad("capability past the end"))? as usize;
            match u32::from(id) {
                sys::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE => {
                    let n =
                        u32_at(offset + 8).ok_or_else(|| bad("IOVA range cap truncated"))? as usize;
                    for i in 0..n {
                        let at = offset + 16 + i * 16;
                        let (start, last) = u64_at(at)
                            .zip(u64_at(at + 8))
                            .ok_or_else(|| bad("IOVA range cap truncated"))?;
                        // The kernel's `end` is inclusive; keep half-open ranges, skipping IOVA
                        // page 0 as libblkio does (a zero address reads as "no buffer" to some
                        // devices).
                        let start = start.max(4096);
                        if last >= start {
                            iova_ranges.push(start..last.saturating_add(1));
                        }
                    }
                }
                sys::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL => {
                    dma_mappings_available =
                        Some(u32_at(offset + 8).ok_or_else(|| bad("DMA avail cap truncated"))?);
                }
                _ => {}
            }
            offset = next;
        }
    }
    if iova_ranges.is_empty() {
        // Kernels before 5.4 report no ranges; the x86 IOMMUs then accept the low 39 bits
        // except the MSI window, which is what QEMU's vIOMMU offers anyway.
        iova_ranges.push(4096..0xfee0_0000);
        iova_ranges.push(0xfef0_0000..(1 << 39));
    }
    iova_ranges.sort_by_key(|r| r.start);
    if iova_ranges.is_empty() {
        return Err(VfioError::NoIovaRanges);
    }
    Ok(IommuInfo {
        page_sizes,
        iova_ranges,
        dma_mappings_available,
    })
}
