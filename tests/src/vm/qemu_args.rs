//! The QEMU command line: the devices and blockdevs a [`VmSpec`] attaches, and the whole
//! `qemu-system-x86_64` invocation built from a spec.

use std::path::Path;
use std::process::Command;

use super::host::require_program;
use super::kernel::GuestKernel;
use super::spec::VmSpec;

impl VmSpec {
    /// Raw QEMU arguments, appended after everything else (escape hatch).
    pub fn qemu_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.qemu.extend(args.into_iter().map(Into::into));
        self
    }

    /// A raw `-blockdev` (e.g. `driver=null-co,node-name=mine,size=4096`), for devices attached
    /// with [`VmSpec::virtio_blk`] / [`VmSpec::scsi_hd`].
    pub fn blockdev(self, spec: impl Into<String>) -> Self {
        self.qemu_args(["-blockdev".to_string(), spec.into()])
    }

    fn new_node(&mut self) -> String {
        self.next_node += 1;
        format!("uvio-n{}", self.next_node)
    }

    /// A `pcie-root-port` with QEMU id `id` at `addr` (`"09.0"`) on the root complex: a
    /// hot-pluggable slot (chassis `chassis`, slot 1; each port needs a chassis of its own).
    /// A device goes behind it with `bus=<id>` and `addr` `"0"` in the device's options, and
    /// appears in the guest on the port's secondary bus (the first port's is `0000:01:00.0`).
    /// On QEMU 7.2's q35 the guest unplugs it through ACPI (acpiphp) when QMP `device_del`
    /// asks.
    pub fn pcie_root_port(self, id: &str, chassis: u32, addr: &str) -> Self {
        self.qemu_args([
            "-device".to_string(),
            format!("pcie-root-port,id={id},bus=pcie.0,chassis={chassis},slot=1,addr={addr}"),
        ])
    }

    /// A virtio-blk-pci function at PCI address `addr` (`"05.0"`) on blockdev node `node`.
    /// `iommu_platform=on,disable-legacy=on` are added unless `extra` sets them.
    pub fn virtio_blk(self, addr: &str, node: &str, extra: &str) -> Self {
        let dev = virtio_device("virtio-blk-pci", addr, &format!("drive={node}"), extra);
        self.qemu_args(["-device".to_string(), dev])
    }

    /// virtio-blk on a `null-co` backend of `size` bytes (reads return zeroes, writes vanish).
    pub fn virtio_blk_null(mut self, addr: &str, size: u64, extra: &str) -> Self {
        let node = self.new_node();
        self.blockdev(null_blockdev(&node, size))
            .virtio_blk(addr, &node, extra)
    }

    /// virtio-blk on a raw image file.
    pub fn virtio_blk_file(mut self, addr: &str, path: impl AsRef<Path>, extra: &str) -> Self {
        let node = self.new_node();
        self.blockdev(file_blockdev(&node, path.as_ref(), false))
            .virtio_blk(addr, &node, extra)
    }

    /// A virtio-scsi-pci HBA with QEMU id `id` (its bus is `<id>.0`) at `addr`.
    pub fn virtio_scsi(self, id: &str, addr: &str, num_queues: u32, extra: &str) -> Self {
        let own = format!("id={id},num_queues={num_queues}");
        let dev = virtio_device("virtio-scsi-pci", addr, &own, extra);
        self.qemu_args(["-device".to_string(), dev])
    }

    /// A scsi-hd LUN on HBA `bus_id`, target (`scsi-id`) `target`, LUN `lun`, on blockdev `node`.
    pub fn scsi_hd(self, bus_id: &str, target: u32, lun: u32, node: &str, extra: &str) -> Self {
        let dev = format!(
            "scsi-hd,drive={node},bus={bus_id}.0,channel=0,scsi-id={target},lun={lun}{}",
            comma(extra)
        );
        self.qemu_args(["-device".to_string(), dev])
    }

    /// A scsi-hd LUN on a `null-co` backend of `size` bytes.
    pub fn scsi_hd_null(
        mut self,
        bus_id: &str,
        target: u32,
        lun: u32,
        size: u64,
        extra: &str,
    ) -> Self {
        let node = self.new_node();
        self.blockdev(null_blockdev(&node, size))
            .scsi_hd(bus_id, target, lun, &node, extra)
    }

    /// A scsi-hd LUN on a raw image file.
    pub fn scsi_hd_file(
        mut self,
        bus_id: &str,
        target: u32,
        lun: u32,
        path: impl AsRef<Path>,
        extra: &str,
    ) -> Self {
        let node = self.new_node();
        self.blockdev(file_blockdev(&node, path.as_ref(), false))
            .scsi_hd(bus_id, target, lun, &node, extra)
    }

    /// A scsi-cd LUN, with `media` (a read-only image) or with an empty tray.
    pub fn scsi_cd(
        mut self,
        bus_id: &str,
        target: u32,
        lun: u32,
        media: Option<&Path>,
        extra: &str,
    ) -> Self {
        let drive = match media {
            Some(path) => {
                let node = self.new_node();
                self = self.blockdev(file_blockdev(&node, path, true));
                format!("drive={node},")
            }
            None => String::new(),
        };
        let dev = format!(
            "scsi-cd,{drive}bus={bus_id}.0,channel=0,scsi-id={target},lun={lun}{}",
            comma(extra)
        );
        self.qemu_args(["-device".to_string(), dev])
    }

    pub(super) fn qemu_command(
        &self,
        kernel: &GuestKernel,
        initrd: &Path,
        qmp: Option<&Path>,
    ) -> Command {
        let mut cmd = Command::new(require_program("qemu-system-x86_64"));
        // why -nodefaults: no default NIC, VGA or monitor, so the PCI topology is exactly what
        // the test asked for. The serial port is the console, on our stdin/stdout pipes (stdin
        // must be open: QEMU refuses to start with a closed stdin).
        cmd.args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-serial", "stdio", "-no-reboot"]);
        if self.kvm {
            // why split irqchip: KVM's in-kernel irqchip cannot do vIOMMU interrupt remapping.
            cmd.args([
                "-accel",
                "kvm",
                "-cpu",
                "host",
                "-M",
                "q35,kernel-irqchip=split",
            ]);
        } else {
            cmd.args(["-accel", "tcg", "-cpu", "max", "-M", "q35"]);
        }
        cmd.args(["-smp", &self.smp.to_string()])
            .args(["-m", &format!("{}M", self.memory_mb)])
            .arg("-kernel")
            .arg(&kernel.vmlinuz)
            .arg("-initrd")
            .arg(initrd);
        let mut append = vec!["console=ttyS0", "quiet", "panic=-1"];
        if self.viommu {
            append.push("intel_iommu=on");
            // The vIOMMU must exist before the PCI devices that translate through it.
            let dev = if self.kvm {
                "intel-iommu,caching-mode=on,intremap=on"
            } else {
                "intel-iommu,caching-mode=on"
            };
            cmd.args(["-device", dev]);
        }
        append.extend(self.kernel_args.iter().map(String::as_str));
        cmd.arg("-append").arg(append.join(" "));
        if let Some(sock) = qmp {
            cmd.arg("-qmp")
                .arg(format!("unix:{},server=on,wait=off", sock.display()));
        }
        cmd.args(&self.qemu);
        cmd
    }
}

fn comma(extra: &str) -> String {
    let extra = extra.trim_matches(',');
    if extra.is_empty() {
        String::new()
    } else {
        format!(",{extra}")
    }
}

/// `-device` value for a virtio PCI function with the harness defaults (modern-only, DMA through
/// the vIOMMU) unless `extra` overrides them.
fn virtio_device(driver: &str, addr: &str, own: &str, extra: &str) -> String {
    let keys: Vec<String> = extra
        .split(',')
        .map(|kv| kv.split('=').next().unwrap_or("").trim().replace('_', "-"))
        .collect();
    let mut dev = format!("{driver},addr={addr},{own}");
    for (key, default) in [
        ("iommu-platform", "iommu_platform=on"),
        ("disable-legacy", "disable-legacy=on"),
    ] {
        if !keys.iter().any(|k| k == key) {
            dev.push(',');
            dev.push_str(default);
        }
    }
    dev + &comma(extra)
}

fn null_blockdev(node: &str, size: u64) -> String {
    format!("driver=null-co,node-name={node},size={size},read-zeroes=on")
}

/// QEMU option values use `,` as a separator; a literal comma is written `,,`.
fn file_blockdev(node: &str, path: &Path, read_only: bool) -> String {
    let path = path.display().to_string().replace(',', ",,");
    let ro = if read_only { ",read-only=on" } else { "" };
    format!("driver=file,filename={path},node-name={node}{ro}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtio_defaults_can_be_overridden() {
        let d = virtio_device("virtio-blk-pci", "05.0", "drive=x", "");
        assert_eq!(
            d,
            "virtio-blk-pci,addr=05.0,drive=x,iommu_platform=on,disable-legacy=on"
        );
        let d = virtio_device(
            "virtio-blk-pci",
            "05.0",
            "drive=x",
            "iommu_platform=off,packed=on",
        );
        assert_eq!(
            d,
            "virtio-blk-pci,addr=05.0,drive=x,disable-legacy=on,iommu_platform=off,packed=on"
        );
    }

    #[test]
    fn commas_in_paths_are_escaped() {
        assert_eq!(
            file_blockdev("n", Path::new("/a,b.img"), true),
            "driver=file,filename=/a,,b.img,node-name=n,read-only=on"
        );
    }
}
