//! virtio-scsi on the wire (virtio 1.2, 5.6.6): request and response headers, response
//! codes, task management and events. All multi-byte fields are little-endian.

/// Bytes of the request header with the default 32-byte CDB.
pub const CMD_REQ_LEN: usize = 51;
/// Offset of the CDB in the request header.
pub const CMD_REQ_CDB: usize = 19;
/// CDB bytes the header carries (the config's default cdb_size).
pub const CDB_SIZE: usize = 32;
/// Bytes of the response header with the default 96-byte sense buffer.
pub const CMD_RESP_LEN: usize = 108;
/// Sense bytes the response carries (the config's default sense_size).
pub const SENSE_SIZE: usize = 96;
/// Bytes of one event.
pub const EVENT_LEN: usize = 16;

/// Builds a command request header: LUN field, tag, SIMPLE task attribute, the CDB.
pub fn cmd_req(lun: &[u8; 8], tag: u64, cdb: &[u8]) -> [u8; CMD_REQ_LEN] {
    let mut h = [0u8; CMD_REQ_LEN];
    h[0..8].copy_from_slice(lun);
    h[8..16].copy_from_slice(&tag.to_le_bytes());
    let n = cdb.len().min(CDB_SIZE);
    h[CMD_REQ_CDB..CMD_REQ_CDB + n].copy_from_slice(&cdb[..n]);
    h
}

/// Words a command request header takes in a queue's slot (51 bytes, zero-padded to 56).
pub const CMD_REQ_WORDS: usize = CMD_REQ_LEN.div_ceil(8);

/// [`cmd_req`] as the little-endian words a queue stores into its slot: seven 8-byte stores
/// instead of fifty-one 1-byte ones.
#[inline]
pub fn cmd_req_words(lun: &[u8; 8], tag: u64, cdb: &[u8]) -> [u64; CMD_REQ_WORDS] {
    let mut bytes = [0u8; CMD_REQ_WORDS * 8];
    bytes[..CMD_REQ_LEN].copy_from_slice(&cmd_req(lun, tag, cdb));
    let mut words = [0u64; CMD_REQ_WORDS];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        // Stored as is, so the bytes land in memory in order on either endianness.
        *w = u64::from_ne_bytes(b);
    }
    words
}

/// A command response header, as the device wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmdResp {
    pub sense_len: u32,
    pub resid: u32,
    pub status_qualifier: u16,
    pub status: u8,
    pub response: u8,
}

impl CmdResp {
    /// From the header's first 8 bytes and the next 4, as loaded (native-endian) from memory.
    pub fn from_words(head: u64, tail: u32) -> Self {
        let head = head.to_ne_bytes();
        let tail = tail.to_ne_bytes();
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&head);
        b[8..].copy_from_slice(&tail);
        Self::parse(&b)
    }

    pub fn parse(b: &[u8; 12]) -> Self {
        CmdResp {
            sense_len: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            resid: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            status_qualifier: u16::from_le_bytes([b[8], b[9]]),
            status: b[10],
            response: b[11],
        }
    }
}

/// virtio-scsi response codes.
pub mod response {
    pub const OK: u8 = 0;
    pub const OVERRUN: u8 = 1;
    pub const ABORTED: u8 = 2;
    pub const BAD_TARGET: u8 = 3;
    pub const RESET: u8 = 4;
    pub const BUSY: u8 = 5;
    pub const TRANSPORT_FAILURE: u8 = 6;
    pub const TARGET_FAILURE: u8 = 7;
    pub const NEXUS_FAILURE: u8 = 8;
    pub const FAILURE: u8 = 9;
    pub const FUNCTION_SUCCEEDED: u8 = 10;
    pub const FUNCTION_REJECTED: u8 = 11;
    pub const INCORRECT_LUN: u8 = 12;

    /// The spec's name of a response code.
    pub fn name(code: u8) -> &'static str {
        match code {
            OK => "OK",
            OVERRUN => "OVERRUN",
            ABORTED => "ABORTED",
            BAD_TARGET => "BAD_TARGET",
            RESET => "RESET",
            BUSY => "BUSY",
            TRANSPORT_FAILURE => "TRANSPORT_FAILURE",
            TARGET_FAILURE => "TARGET_FAILURE",
            NEXUS_FAILURE => "NEXUS_FAILURE",
            FAILURE => "FAILURE",
            FUNCTION_SUCCEEDED => "FUNCTION_SUCCEEDED",
            FUNCTION_REJECTED => "FUNCTION_REJECTED",
            INCORRECT_LUN => "INCORRECT_LUN",
            _ => "unknown response",
        }
    }
}

/// Task management functions (control queue, type VIRTIO_SCSI_T_TMF = 0).
pub mod tmf {
    pub const T_TMF: u32 = 0;
    pub const ABORT_TASK: u32 = 0;
    pub const I_T_NEXUS_RESET: u32 = 4;
    pub const LOGICAL_UNIT_RESET: u32 = 5;
    /// Bytes of a TMF request.
    pub const REQ_LEN: usize = 24;
}

/// Builds a TMF request: type, subtype, LUN field, tag of the task (for ABORT TASK).
pub fn tmf_req(subtype: u32, lun: &[u8; 8], tag: u64) -> [u8; tmf::REQ_LEN] {
    let mut r = [0u8; tmf::REQ_LEN];
    r[0..4].copy_from_slice(&tmf::T_TMF.to_le_bytes());
    r[4..8].copy_from_slice(&subtype.to_le_bytes());
    r[8..16].copy_from_slice(lun);
    r[16..24].copy_from_slice(&tag.to_le_bytes());
    r
}

/// Event types.
pub mod event {
    pub const NO_EVENT: u32 = 0;
    pub const TRANSPORT_RESET: u32 = 1;
    pub const ASYNC_NOTIFY: u32 = 2;
    pub const PARAM_CHANGE: u32 = 3;
    pub const EVENTS_MISSED: u32 = 0x8000_0000;
    pub const RESET_HARD: u32 = 0;
    pub const RESET_RESCAN: u32 = 1;
    pub const RESET_REMOVED: u32 = 2;
}

/// An event as the device reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The event type without the EVENTS_MISSED bit.
    pub kind: u32,
    /// Events were dropped before this one: rescan everything.
    pub missed: bool,
    pub lun: [u8; 8],
    pub reason: u32,
}

impl Event {
    pub fn parse(b: &[u8; EVENT_LEN]) -> Self {
        let raw = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let mut lun = [0u8; 8];
        lun.copy_from_slice(&b[4..12]);
        Event {
            kind: raw & !event::EVENTS_MISSED,
            missed: raw & event::EVENTS_MISSED != 0,
            lun,
            reason: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        }
    }

    /// The target and LUN number the event names (QEMU uses peripheral form below 256).
    pub fn target_lun(&self) -> (u16, u16) {
        (
            u16::from(self.lun[1]),
            (u16::from(self.lun[2] & 0x3f) << 8) | u16::from(self.lun[3]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_layout() {
        let lun = [1, 2, 0x40, 5, 0, 0, 0, 0];
        let h = cmd_req(&lun, 0x1122_3344_5566_7788, &[0x12, 0, 0, 0, 36, 0]);
        assert_eq!(&h[0..8], &lun);
        assert_eq!(&h[8..16], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(h[16], 0, "SIMPLE");
        assert_eq!(&h[19..25], &[0x12, 0, 0, 0, 36, 0]);
        assert!(h[25..].iter().all(|&b| b == 0));
    }

    #[test]
    fn parses_responses_and_events() {
        let mut r = [0u8; 12];
        r[0..4].copy_from_slice(&18u32.to_le_bytes());
        r[4..8].copy_from_slice(&100u32.to_le_bytes());
        r[10] = 2;
        r[11] = response::OK;
        let resp = CmdResp::parse(&r);
        assert_eq!(
            (resp.sense_len, resp.resid, resp.status, resp.response),
            (18, 100, 2, 0)
        );
        assert_eq!(response::name(response::BAD_TARGET), "BAD_TARGET");

        let mut e = [0u8; 16];
        e[0..4].copy_from_slice(&(event::TRANSPORT_RESET | event::EVENTS_MISSED).to_le_bytes());
        e[4..8].copy_from_slice(&[1, 3, 0x41, 0x2c]);
        e[12..16].copy_from_slice(&event::RESET_RESCAN.to_le_bytes());
        let ev = Event::parse(&e);
        assert_eq!(ev.kind, event::TRANSPORT_RESET);
        assert!(ev.missed);
        assert_eq!(ev.reason, event::RESET_RESCAN);
        assert_eq!(ev.target_lun(), (3, 300));
        let t = tmf_req(tmf::LOGICAL_UNIT_RESET, &[1, 0, 0x40, 0, 0, 0, 0, 0], 0);
        assert_eq!(&t[0..8], &[0, 0, 0, 0, 5, 0, 0, 0]);
    }
}
