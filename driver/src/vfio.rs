//! VFIO: the container, the group and the device, their regions, and IOMMU DMA mappings.
//!
//! This is the only module that issues VFIO ioctls. It wraps the raw ioctls with the structs from
//! `vfio-bindings` rather than using `vfio-ioctls`, because that crate swallows region read
//! errors, panics in `Drop`, and has no call for the IOVA ranges (`VFIO_IOMMU_GET_INFO`) that a
//! guest behind a 39-bit vIOMMU must allocate from.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use vfio_bindings::bindings::vfio as sys;

use crate::pci::{PciAddress, PciFunction};

mod bar;
mod iommu;
mod removal;

pub use bar::MappedBar;
use iommu::parse_iommu_info;
pub use iommu::IommuInfo;
pub use removal::{set_removal_listener, RemovalListener, RemovalSignal, RemovalWatch};

/// Errors from VFIO.
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    #[error(
        "{0} has no IOMMU group: the guest needs a (v)IOMMU for VFIO. In QEMU use \
         `-M q35 -device intel-iommu,caching-mode=on`, boot the guest kernel with `intel_iommu=on`, \
         and give each virtio device `iommu_platform=on,disable-legacy=on`"
    )]
    NoIommuGroup(PciAddress),
    #[error("{bdf} is bound to {driver}, not vfio-pci: run `uvio bind {bdf}` first")]
    NotBoundToVfio { bdf: PciAddress, driver: String },
    #[error("opening {path}: {source}{hint}")]
    Open {
        path: PathBuf,
        source: io::Error,
        hint: &'static str,
    },
    /// The group is open in another process (only one may hold it), named when /proc says.
    #[error("opening {path}: {source}: {holder}")]
    GroupBusy {
        path: PathBuf,
        source: io::Error,
        holder: String,
    },
    #[error("VFIO API version {0} is not the supported version 0")]
    ApiVersion(i32),
    #[error("the VFIO container does not support the type1v2 IOMMU")]
    NoType1v2,
    #[error(
        "IOMMU group {0} is not viable: every function in /sys/kernel/iommu_groups/{0}/devices \
         must be bound to vfio-pci (or to no driver)"
    )]
    GroupNotViable(u32),
    #[error("{op} failed: {source}")]
    Ioctl { op: &'static str, source: io::Error },
    #[error("{0} is not a PCI device as VFIO sees it")]
    NotPci(PciAddress),
    #[error("region {index}: {what}")]
    Region { index: u32, what: String },
    #[error("the IOMMU reported no usable IOVA range")]
    NoIovaRanges,
    #[error("{0} has no VFIO device request interrupt: a hot-unplug would wait until uvio exits")]
    NoRequestInterrupt(PciAddress),
}

const fn vfio_io(nr: u32) -> libc::c_ulong {
    // _IO(VFIO_TYPE, VFIO_BASE + nr): no size and no direction bits.
    ((sys::VFIO_TYPE as libc::c_ulong) << 8) | (sys::VFIO_BASE + nr) as libc::c_ulong
}

const VFIO_GET_API_VERSION: libc::c_ulong = vfio_io(0);
const VFIO_CHECK_EXTENSION: libc::c_ulong = vfio_io(1);
const VFIO_SET_IOMMU: libc::c_ulong = vfio_io(2);
const VFIO_GROUP_GET_STATUS: libc::c_ulong = vfio_io(3);
const VFIO_GROUP_SET_CONTAINER: libc::c_ulong = vfio_io(4);
const VFIO_GROUP_GET_DEVICE_FD: libc::c_ulong = vfio_io(6);
const VFIO_DEVICE_GET_INFO: libc::c_ulong = vfio_io(7);
const VFIO_DEVICE_GET_REGION_INFO: libc::c_ulong = vfio_io(8);
const VFIO_DEVICE_GET_IRQ_INFO: libc::c_ulong = vfio_io(9);
const VFIO_DEVICE_SET_IRQS: libc::c_ulong = vfio_io(10);
const VFIO_DEVICE_RESET: libc::c_ulong = vfio_io(11);
const VFIO_IOMMU_GET_INFO: libc::c_ulong = vfio_io(12);
const VFIO_IOMMU_MAP_DMA: libc::c_ulong = vfio_io(13);
const VFIO_IOMMU_UNMAP_DMA: libc::c_ulong = vfio_io(14);

/// Issues an ioctl whose argument is an integer.
fn ioctl_val(
    fd: &impl AsRawFd,
    op: &'static str,
    req: libc::c_ulong,
    arg: libc::c_ulong,
) -> Result<i32, VfioError> {
    // SAFETY: the request takes its argument by value; no memory is shared with the kernel.
    ioctl_result(op, unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) })
}

/// An ioctl's return value, or the error it set.
fn ioctl_result(op: &'static str, ret: i32) -> Result<i32, VfioError> {
    if ret < 0 {
        return Err(VfioError::Ioctl {
            op,
            source: io::Error::last_os_error(),
        });
    }
    Ok(ret)
}

/// Issues an ioctl whose argument is a pointer to `arg`, a `#[repr(C)]` struct of the layout
/// the request expects, followed by `arg_len - size_of::<T>()` writable trailing bytes.
///
/// # Safety
/// `arg` must point to `arg_len` bytes valid for reads and writes, laid out as `req` expects.
unsafe fn ioctl_ptr<T>(
    fd: &impl AsRawFd,
    op: &'static str,
    req: libc::c_ulong,
    arg: *mut T,
) -> Result<i32, VfioError> {
    // SAFETY: the caller guarantees `arg` is valid for what `req` reads and writes.
    ioctl_result(op, unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) })
}

fn open_rw(path: PathBuf, hint: &'static str) -> Result<File, VfioError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|source| VfioError::Open { path, source, hint })
}

/// The processes other than `own_pid` with a file descriptor open on `path` (a VFIO group),
/// as `(pid, command name)`, as far as `proc_root` (`/proc`) shows them: another user's
/// descriptors are visible only to root.
fn holders_of(proc_root: &Path, path: &Path, own_pid: u32) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own_pid {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path));
        if holds {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            found.push((pid, comm.trim().to_string()));
        }
    }
    found.sort();
    found
}

/// The end of a [`VfioError::GroupBusy`] message.
fn describe_holders(holders: &[(u32, String)]) -> String {
    let named: Vec<String> = holders
        .iter()
        .map(|(pid, comm)| match comm.as_str() {
            "" => format!("process {pid}"),
            comm => format!("process {pid} ({comm})"),
        })
        .collect();
    match named.as_slice() {
        [] => "another process holds the IOMMU group open (only one may); /proc does not \
               say which (run as root to see)"
            .to_string(),
        [one] => format!("{one} holds the IOMMU group open (only one process may)"),
        _ => format!(
            "{} hold the IOMMU group open (only one process may)",
            named.join(", ")
        ),
    }
}

/// One VFIO region of a device (a BAR, the config space, ...).
#[derive(Debug, Clone, Copy)]
pub struct RegionInfo {
    pub index: u32,
    pub flags: u32,
    pub size: u64,
    /// Offset of the region within the device file descriptor.
    pub offset: u64,
}

impl RegionInfo {
    pub fn mappable(&self) -> bool {
        self.flags & sys::VFIO_REGION_INFO_FLAG_MMAP != 0
    }
}

/// One VFIO interrupt index of a device (INTx, MSI, MSI-X, error, request).
#[derive(Debug, Clone, Copy)]
pub struct IrqInfo {
    pub index: u32,
    /// `VFIO_IRQ_INFO_*` bits.
    pub flags: u32,
    /// How many interrupts the index has (0: none).
    pub count: u32,
}

impl IrqInfo {
    /// Whether VFIO signals this index through an eventfd.
    pub fn eventfd(&self) -> bool {
        self.flags & sys::VFIO_IRQ_INFO_EVENTFD != 0
    }
}

/// `struct vfio_irq_set` with one eventfd as its data, as `VFIO_DEVICE_SET_IRQS` reads it.
#[repr(C)]
struct IrqSetOneEventfd {
    header: sys::vfio_irq_set,
    fd: i32,
}

/// A PCI function opened through VFIO: its own container (type1v2 IOMMU), its group and the
/// device file descriptor. Dropping it closes all three, which detaches the group and removes
/// every DMA mapping made through the container.
pub struct VfioDevice {
    address: PciAddress,
    device: File,
    /// Kept open for as long as the device: the kernel tears the container down when the last
    /// group leaves it.
    _group: File,
    container: File,
    group_number: u32,
    regions: Vec<RegionInfo>,
}

impl std::fmt::Debug for VfioDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioDevice")
            .field("address", &self.address)
            .field("group", &self.group_number)
            .field("regions", &self.regions)
            .finish()
    }
}

impl VfioDevice {
    /// Opens `function`, which must be bound to vfio-pci.
    pub fn open(function: &PciFunction) -> Result<Self, VfioError> {
        let address = function.address;
        let group_number = function
            .iommu_group()
            .ok_or(VfioError::NoIommuGroup(address))?;
        match function.driver() {
            Some(d) if d == "vfio-pci" => {}
            other => {
                return Err(VfioError::NotBoundToVfio {
                    bdf: address,
                    driver: other.unwrap_or_else(|| "no driver".to_string()),
                })
            }
        }

        let container = open_rw(
            "/dev/vfio/vfio".into(),
            ": is the vfio module loaded (`modprobe vfio-pci`) and are you root?",
        )?;
        let version = ioctl_val(&container, "VFIO_GET_API_VERSION", VFIO_GET_API_VERSION, 0)?;
        if version != sys::VFIO_API_VERSION as i32 {
            return Err(VfioError::ApiVersion(version));
        }
        let has_type1v2 = ioctl_val(
            &container,
            "VFIO_CHECK_EXTENSION",
            VFIO_CHECK_EXTENSION,
            sys::VFIO_TYPE1v2_IOMMU.into(),
        )?;
        if has_type1v2 != 1 {
            return Err(VfioError::NoType1v2);
        }

        let group = open_rw(
            format!("/dev/vfio/{group_number}").into(),
            ": another process may hold the group open (only one may), or you are not root",
        )
        .map_err(|e| match e {
            VfioError::Open { path, source, .. } if source.raw_os_error() == Some(libc::EBUSY) => {
                let holder =
                    describe_holders(&holders_of(Path::new("/proc"), &path, std::process::id()));
                VfioError::GroupBusy {
                    path,
                    source,
                    holder,
                }
            }
            other => other,
        })?;
        let mut status = sys::vfio_group_status {
            argsz: size_of::<sys::vfio_group_status>() as u32,
            flags: 0,
        };
        // SAFETY: `status` is a vfio_group_status with argsz set, as the request expects.
        unsafe {
            ioctl_ptr(
                &group,
                "VFIO_GROUP_GET_STATUS",
                VFIO_GROUP_GET_STATUS,
                &mut status,
            )?
        };
        if status.flags & sys::VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(VfioError::GroupNotViable(group_number));
        }
        let mut container_fd: i32 = container.as_raw_fd();
        // SAFETY: the request reads one int, the container's file descriptor.
        unsafe {
            ioctl_ptr(
                &group,
                "VFIO_GROUP_SET_CONTAINER",
                VFIO_GROUP_SET_CONTAINER,
                &mut container_fd,
            )?
        };
        ioctl_val(
            &container,
            "VFIO_SET_IOMMU(type1v2)",
            VFIO_SET_IOMMU,
            sys::VFIO_TYPE1v2_IOMMU.into(),
        )?;

        let name = CString::new(address.to_string()).expect("a PCI address has no NUL byte");
        // SAFETY: the request reads a NUL-terminated string, which `name` is.
        let fd = unsafe {
            ioctl_ptr(
                &group,
                "VFIO_GROUP_GET_DEVICE_FD",
                VFIO_GROUP_GET_DEVICE_FD,
                name.as_ptr() as *mut libc::c_char,
            )?
        };
        // SAFETY: the kernel just returned `fd` as a new file descriptor that nothing else owns.
        let device = File::from(unsafe { OwnedFd::from_raw_fd(fd) });

        let mut info = sys::vfio_device_info {
            argsz: size_of::<sys::vfio_device_info>() as u32,
            ..Default::default()
        };
        // SAFETY: `info` is a vfio_device_info with argsz set.
        unsafe {
            ioctl_ptr(
                &device,
                "VFIO_DEVICE_GET_INFO",
                VFIO_DEVICE_GET_INFO,
                &mut info,
            )?
        };
        if info.flags & sys::VFIO_DEVICE_FLAGS_PCI == 0 {
            return Err(VfioError::NotPci(address));
        }
        let mut regions = Vec::new();
        for index in 0..info.num_regions.min(sys::VFIO_PCI_NUM_REGIONS) {
            let mut region = sys::vfio_region_info {
                argsz: size_of::<sys::vfio_region_info>() as u32,
                index,
                ..Default::default()
            };
            // SAFETY: `region` is a vfio_region_info with argsz and index set; with argsz equal
            // to the bare struct the kernel writes no capability chain after it.
            let queried = unsafe {
                ioctl_ptr(
                    &device,
                    "VFIO_DEVICE_GET_REGION_INFO",
                    VFIO_DEVICE_GET_REGION_INFO,
                    &mut region,
                )
            };
            // vfio-pci refuses the VGA region (index 8) of a non-VGA function with EINVAL:
            // record such a region as absent, keeping the indices of the others.
            if queried.is_err() {
                region.size = 0;
                region.flags = 0;
            }
            regions.push(RegionInfo {
                index,
                flags: region.flags,
                size: region.size,
                offset: region.offset,
            });
        }
        Ok(VfioDevice {
            address,
            device,
            _group: group,
            container,
            group_number,
            regions,
        })
    }

    pub fn address(&self) -> PciAddress {
        self.address
    }

    pub fn group_number(&self) -> u32 {
        self.group_number
    }

    /// Region `index` (0..=5 are BARs, 7 is the config space).
    pub fn region(&self, index: u32) -> Result<RegionInfo, VfioError> {
        self.regions
            .get(index as usize)
            .copied()
            .filter(|r| r.size > 0)
            .ok_or_else(|| VfioError::Region {
                index,
                what: "absent or empty".into(),
            })
    }

    fn region_io_check(
        &self,
        index: u32,
        offset: u64,
        len: usize,
    ) -> Result<RegionInfo, VfioError> {
        let region = self.region(index)?;
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > region.size)
        {
            return Err(VfioError::Region {
                index,
                what: format!(
                    "access of {len} bytes at {offset:#x} is outside its {:#x} bytes",
                    region.size
                ),
            });
        }
        Ok(region)
    }

    /// Reads `buf.len()` bytes of region `index` at `offset` with pread; short reads are errors.
    pub fn read_region(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<(), VfioError> {
        let region = self.region_io_check(index, offset, buf.len())?;
        self.device
            .read_exact_at(buf, region.offset + offset)
            .map_err(|source| VfioError::Ioctl {
                op: "region read",
                source,
            })
    }

    /// Writes `buf` to region `index` at `offset` with pwrite; short writes are errors.
    pub fn write_region(&self, index: u32, offset: u64, buf: &[u8]) -> Result<(), VfioError> {
        let region = self.region_io_check(index, offset, buf.len())?;
        self.device
            .write_all_at(buf, region.offset + offset)
            .map_err(|source| VfioError::Ioctl {
                op: "region write",
                source,
            })
    }

    /// PCI config space access (region 7).
    pub fn read_config(&self, offset: u64, buf: &mut [u8]) -> Result<(), VfioError> {
        self.read_region(sys::VFIO_PCI_CONFIG_REGION_INDEX, offset, buf)
    }

    pub fn write_config(&self, offset: u64, buf: &[u8]) -> Result<(), VfioError> {
        self.write_region(sys::VFIO_PCI_CONFIG_REGION_INDEX, offset, buf)
    }

    pub fn read_config_u8(&self, offset: u64) -> Result<u8, VfioError> {
        let mut b = [0u8; 1];
        self.read_config(offset, &mut b)?;
        Ok(b[0])
    }

    pub fn read_config_u16(&self, offset: u64) -> Result<u16, VfioError> {
        let mut b = [0u8; 2];
        self.read_config(offset, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    pub fn read_config_u32(&self, offset: u64) -> Result<u32, VfioError> {
        let mut b = [0u8; 4];
        self.read_config(offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Maps BAR `index` into this process, when VFIO allows it.
    pub fn map_bar(&self, index: u32) -> Result<MappedBar, VfioError> {
        let region = self.region(index)?;
        if !region.mappable() {
            return Err(VfioError::Region {
                index,
                what: "VFIO does not allow mapping it".into(),
            });
        }
        let len = usize::try_from(region.size).map_err(|_| VfioError::Region {
            index,
            what: "too large to map".into(),
        })?;
        // SAFETY: a fresh shared mapping of the device fd at the offset VFIO gave for this
        // region; the kernel checks offset and length. Nothing else aliases the new range.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.device.as_raw_fd(),
                region.offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(VfioError::Ioctl {
                op: "mmap of a BAR",
                source: io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(VfioError::Region {
            index,
            what: "mapped at address 0".into(),
        })?;
        Ok(MappedBar { ptr, len })
    }

    /// What VFIO says of interrupt index `index` (`VFIO_PCI_*_IRQ_INDEX`).
    pub fn irq_info(&self, index: u32) -> Result<IrqInfo, VfioError> {
        let mut info = sys::vfio_irq_info {
            argsz: size_of::<sys::vfio_irq_info>() as u32,
            index,
            ..Default::default()
        };
        // SAFETY: `info` is a vfio_irq_info with argsz and index set.
        unsafe {
            ioctl_ptr(
                &self.device,
                "VFIO_DEVICE_GET_IRQ_INFO",
                VFIO_DEVICE_GET_IRQ_INFO,
                &mut info,
            )?
        };
        Ok(IrqInfo {
            index,
            flags: info.flags,
            count: info.count,
        })
    }

    /// Makes VFIO signal `eventfd` for interrupt 0 of index `index`.
    fn set_irq_eventfd(&self, index: u32, eventfd: BorrowedFd<'_>) -> Result<(), VfioError> {
        let mut set = IrqSetOneEventfd {
            header: sys::vfio_irq_set {
                argsz: size_of::<IrqSetOneEventfd>() as u32,
                flags: sys::VFIO_IRQ_SET_DATA_EVENTFD | sys::VFIO_IRQ_SET_ACTION_TRIGGER,
                index,
                start: 0,
                count: 1,
                ..Default::default()
            },
            fd: eventfd.as_raw_fd(),
        };
        // SAFETY: `set` is a vfio_irq_set header directly followed by the one int (an eventfd)
        // its count of 1 announces, argsz covering both; the kernel only reads it.
        unsafe {
            ioctl_ptr(
                &self.device,
                "VFIO_DEVICE_SET_IRQS(request eventfd)",
                VFIO_DEVICE_SET_IRQS,
                &mut set,
            )?
        };
        Ok(())
    }

    /// Registers VFIO's device request notifier (`VFIO_PCI_REQ_IRQ_INDEX`) and starts a
    /// thread that waits on it: when the kernel asks for the device back (hot-unplug,
    /// `device_del`, an unbind), the watch's [`RemovalSignal`] goes up and the listener set
    /// with [`set_removal_listener`] is called. The caller should then stop, fail what is in
    /// flight and close the device: the kernel's removal waits for that.
    pub fn watch_removal(&self) -> Result<RemovalWatch, VfioError> {
        let info = self.irq_info(sys::VFIO_PCI_REQ_IRQ_INDEX)?;
        if info.count == 0 || !info.eventfd() {
            return Err(VfioError::NoRequestInterrupt(self.address));
        }
        let request = removal::eventfd()?;
        self.set_irq_eventfd(sys::VFIO_PCI_REQ_IRQ_INDEX, request.as_fd())?;
        RemovalWatch::spawn(self.address, request)
    }

    /// Resets the function (FLR or whatever reset the kernel has for it).
    pub fn reset(&self) -> Result<(), VfioError> {
        ioctl_val(&self.device, "VFIO_DEVICE_RESET", VFIO_DEVICE_RESET, 0).map(|_| ())
    }

    /// Page sizes, usable IOVA ranges and the mapping budget of the container's IOMMU.
    pub fn iommu_info(&self) -> Result<IommuInfo, VfioError> {
        // First ask how large the answer with its capability chain is, then ask again with
        // room for it (argsz is raised by the kernel when caps do not fit).
        let mut argsz = size_of::<sys::vfio_iommu_type1_info>() as u32;
        let mut buf: Vec<u64>;
        loop {
            buf = vec![0u64; (argsz as usize).div_ceil(8)];
            let info = buf.as_mut_ptr().cast::<sys::vfio_iommu_type1_info>();
            // SAFETY: `buf` is 8-byte aligned, at least argsz bytes long and zeroed; the
            // header fits in it because argsz >= size_of::<vfio_iommu_type1_info>().
            unsafe {
                (*info).argsz = argsz;
                ioctl_ptr(
                    &self.container,
                    "VFIO_IOMMU_GET_INFO",
                    VFIO_IOMMU_GET_INFO,
                    info,
                )?;
            }
            // SAFETY: as above, the header lies inside `buf`.
            let wanted = unsafe { (*info).argsz };
            if wanted <= argsz {
                break;
            }
            argsz = wanted;
        }
        let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let bytes = &bytes[..argsz as usize];
        parse_iommu_info(bytes)
    }

    /// Maps `size` bytes at `vaddr` to `iova` for device reads and writes.
    ///
    /// # Safety
    /// The memory must stay allocated (and must not be remapped) until [`unmap_dma`] for the same
    /// range, or until the device is dropped: the device may access it at any time.
    ///
    /// [`unmap_dma`]: VfioDevice::unmap_dma
    pub unsafe fn map_dma(&self, vaddr: *mut u8, iova: u64, size: u64) -> Result<(), VfioError> {
        let mut map = sys::vfio_iommu_type1_dma_map {
            argsz: size_of::<sys::vfio_iommu_type1_dma_map>() as u32,
            flags: sys::VFIO_DMA_MAP_FLAG_READ | sys::VFIO_DMA_MAP_FLAG_WRITE,
            vaddr: vaddr as u64,
            iova,
            size,
        };
        // SAFETY: `map` is a vfio_iommu_type1_dma_map with argsz set; the caller keeps the
        // memory behind it alive while mapped.
        unsafe {
            ioctl_ptr(
                &self.container,
                "VFIO_IOMMU_MAP_DMA",
                VFIO_IOMMU_MAP_DMA,
                &mut map,
            )?
        };
        Ok(())
    }

    /// Removes the mapping of `size` bytes at `iova`.
    pub fn unmap_dma(&self, iova: u64, size: u64) -> Result<(), VfioError> {
        let mut unmap = sys::vfio_iommu_type1_dma_unmap {
            argsz: size_of::<sys::vfio_iommu_type1_dma_unmap>() as u32,
            flags: 0,
            iova,
            size,
            data: Default::default(),
        };
        // SAFETY: `unmap` is a vfio_iommu_type1_dma_unmap with argsz set and no bitmap.
        unsafe {
            ioctl_ptr(
                &self.container,
                "VFIO_IOMMU_UNMAP_DMA",
                VFIO_IOMMU_UNMAP_DMA,
                &mut unmap,
            )?
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_u32(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_ne_bytes());
    }
    fn push_u64(v: &mut Vec<u8>, x: u64) {
        v.extend_from_slice(&x.to_ne_bytes());
    }

    /// The reply a 6.1 kernel gives behind QEMU's intel-iommu: 4 KiB pages, one IOVA range
    /// cap with two ranges around the MSI window, then a DMA-available cap.
    fn sample_reply() -> Vec<u8> {
        let mut v = Vec::new();
        push_u32(&mut v, 0); // argsz
        push_u32(
            &mut v,
            sys::VFIO_IOMMU_INFO_PGSIZES | sys::VFIO_IOMMU_INFO_CAPS,
        );
        push_u64(&mut v, 0x4020_1000); // 4K | 2M | 1G
        push_u32(&mut v, 24); // cap_offset
        push_u32(&mut v, 0);
        // IOVA range cap at 24: header(id, version, next), nr, reserved, ranges
        v.extend_from_slice(&(sys::VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE as u16).to_ne_bytes());
        v.extend_from_slice(&1u16.to_ne_bytes());
        push_u32(&mut v, 24 + 16 + 32);
        push_u32(&mut v, 2);
        push_u32(&mut v, 0);
        push_u64(&mut v, 0);
        push_u64(&mut v, 0xfedf_ffff);
        push_u64(&mut v, 0xfef0_0000);
        push_u64(&mut v, 0x7f_ffff_ffff);
        v.extend_from_slice(&(sys::VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL as u16).to_ne_bytes());
        v.extend_from_slice(&1u16.to_ne_bytes());
        push_u32(&mut v, 0);
        push_u32(&mut v, 65535);
        push_u32(&mut v, 0);
        let len = v.len() as u32;
        v[0..4].copy_from_slice(&len.to_ne_bytes());
        v
    }

    #[test]
    fn parses_iova_ranges_and_dma_budget() {
        let info = parse_iommu_info(&sample_reply()).unwrap();
        assert_eq!(info.page_size(), 4096);
        assert_eq!(
            info.iova_ranges,
            vec![4096..0xfee0_0000, 0xfef0_0000..(1u64 << 39)]
        );
        assert_eq!(info.dma_mappings_available, Some(65535));
    }

    #[test]
    fn rejects_a_looping_or_truncated_cap_chain() {
        let mut looping = sample_reply();
        // Make the DMA-avail cap point back at the IOVA cap.
        looping[72 + 4..72 + 8].copy_from_slice(&24u32.to_ne_bytes());
        assert!(parse_iommu_info(&looping).is_err());
        let truncated = &sample_reply()[..40];
        assert!(parse_iommu_info(truncated).is_err());
    }

    #[test]
    fn a_busy_group_names_the_process_that_holds_it() {
        let root = std::env::temp_dir().join(format!("uvio-proc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let group = Path::new("/dev/vfio/7");
        let process = |pid: u32, comm: Option<&str>, fds: &[&str]| {
            let dir = root.join(pid.to_string());
            std::fs::create_dir_all(dir.join("fd")).unwrap();
            if let Some(c) = comm {
                std::fs::write(dir.join("comm"), format!("{c}\n")).unwrap();
            }
            for (n, target) in fds.iter().enumerate() {
                std::os::unix::fs::symlink(target, dir.join("fd").join(n.to_string())).unwrap();
            }
        };
        process(123, Some("qemu-system-x86"), &["/dev/null", "/dev/vfio/7"]);
        process(456, Some("bash"), &["/dev/vfio/17", "/dev/vfio/vfio"]);
        process(99, Some("uvio"), &["/dev/vfio/7"]); // this process: not a holder
        process(77, None, &["/dev/vfio/7"]);
        std::fs::create_dir_all(root.join("self").join("fd")).unwrap();
        let holders = holders_of(&root, group, 99);
        assert_eq!(
            holders,
            vec![(77, String::new()), (123, "qemu-system-x86".to_string())]
        );
        assert_eq!(
            describe_holders(&holders[1..]),
            "process 123 (qemu-system-x86) holds the IOMMU group open (only one process may)"
        );
        assert!(describe_holders(&holders).starts_with("process 77, process 123 (qemu"));
        assert!(describe_holders(&[]).contains("/proc does not say which"));
        assert!(holders_of(&root.join("missing"), group, 1).is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn ioctl_numbers_match_linux() {
        // From <linux/vfio.h>: VFIO_GET_API_VERSION = 0x3b64, VFIO_IOMMU_MAP_DMA = 0x3b71.
        assert_eq!(VFIO_GET_API_VERSION, 0x3b64);
        assert_eq!(VFIO_GROUP_GET_DEVICE_FD, 0x3b6a);
        assert_eq!(VFIO_IOMMU_GET_INFO, 0x3b70);
        assert_eq!(VFIO_IOMMU_MAP_DMA, 0x3b71);
        // VFIO_DEVICE_GET_IRQ_INFO = 0x3b6d, VFIO_DEVICE_SET_IRQS = 0x3b6e.
        assert_eq!(VFIO_DEVICE_GET_IRQ_INFO, 0x3b6d);
        assert_eq!(VFIO_DEVICE_SET_IRQS, 0x3b6e);
        // The request eventfd sits right after the 20-byte vfio_irq_set header.
        assert_eq!(size_of::<sys::vfio_irq_set>(), 20);
        assert_eq!(std::mem::offset_of!(IrqSetOneEventfd, fd), 20);
        assert_eq!(size_of::<IrqSetOneEventfd>(), 24);
    }
}
