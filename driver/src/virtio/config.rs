//! Reading a device-specific configuration structure (virtio 1.2, 4.1.4.6): its fields are
//! little-endian, and a device may expose fewer bytes than the driver knows of.

/// Little-endian field reader over a configuration structure that may be short.
pub(crate) struct ConfigBytes<'a>(pub &'a [u8]);

impl ConfigBytes<'_> {
    pub fn u8(&self, at: usize) -> Option<u8> {
        self.0.get(at).copied()
    }
    pub fn u16(&self, at: usize) -> Option<u16> {
        Some(u16::from_le_bytes(self.0.get(at..at + 2)?.try_into().ok()?))
    }
    pub fn u32(&self, at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(self.0.get(at..at + 4)?.try_into().ok()?))
    }
    pub fn u64(&self, at: usize) -> Option<u64> {
        Some(u64::from_le_bytes(self.0.get(at..at + 8)?.try_into().ok()?))
    }
}
