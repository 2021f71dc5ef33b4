//! virtio-scsi, the SCSI host adapter (virtio 1.x section 5.6): queue 0
//! carries task-management requests, queue 1 events (hot plug, parameter
//! changes), queues 2.. SCSI commands. A command is one chain: the request
//! header with its CDB and any data-out (device-readable), then the
//! response with its sense bytes and any data-in (device-writable); each
//! header lies in a descriptor of its own (without VIRTIO_F_ANY_LAYOUT
//! QEMU takes the first descriptor as the header whatever its length).
//!
//! Multi-byte header fields are in the device's byte order: little-endian
//! for virtio 1, guest (big) endian on s390x for the legacy interface
//! (revision 0). The CDBs and the data they move are SCSI's, big-endian.

use super::super::queue::{setup_queue, DmaBuffer, DriveError, Queue};
use super::super::transport::{has, Transport, TransportError, F_RING_PACKED};
use crate::dma::DmaMemory;
use alloc::rc::Rc;
use alloc::vec::Vec;

pub const DEVICE_ID: u32 = super::super::ids::SCSI;

pub const CONTROL_QUEUE: u16 = 0;
pub const EVENT_QUEUE: u16 = 1;
/// The first request queue; there are `num_queues` of them.
pub const FIRST_REQUEST_QUEUE: u16 = 2;

/// Feature bits.
pub const F_INOUT: u32 = 0;
pub const F_HOTPLUG: u32 = 1;
pub const F_CHANGE: u32 = 2;
pub const F_T10_PI: u32 = 3;

/// Byte order of the header fields.
pub use super::order::Order;

/// The configuration space (section 5.6.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScsiConfig {
    pub num_queues: u32,
    pub seg_max: u32,
    pub max_sectors: u32,
    pub cmd_per_lun: u32,
    pub event_info_size: u32,
    pub sense_size: u32,
    pub cdb_size: u32,
    pub max_channel: u16,
    pub max_target: u16,
    pub max_lun: u32,
}

pub const CONFIG_LEN: usize = 36;

impl ScsiConfig {
    pub fn decode(b: &[u8; CONFIG_LEN], o: Order) -> Self {
        ScsiConfig {
            num_queues: o.u32(&b[0..]),
            seg_max: o.u32(&b[4..]),
            max_sectors: o.u32(&b[8..]),
            cmd_per_lun: o.u32(&b[12..]),
            event_info_size: o.u32(&b[16..]),
            sense_size: o.u32(&b[20..]),
            cdb_size: o.u32(&b[24..]),
            max_channel: o.u16(&b[28..]),
            max_target: o.u16(&b[30..]),
            max_lun: o.u32(&b[32..]),
        }
    }
}

pub fn read_config<T: Transport + ?Sized>(t: &mut T) -> Result<ScsiConfig, TransportError> {
    let mut b = [0u8; CONFIG_LEN];
    t.read_config(&mut b)?;
    Ok(ScsiConfig::decode(&b, Order::for_revision(t.revision())))
}

/// The 8-byte LUN field: 1, target, then the LUN in SAM's flat space
/// addressing (`0x40 | lun >> 8`, `lun & 0xff`), as Linux sends it.
pub fn lun_field(target: u8, lun: u16) -> [u8; 8] {
    [
        1,
        target,
        0x40 | (lun >> 8) as u8 & 0x3f,
        lun as u8,
        0,
        0,
        0,
        0,
    ]
}

/// Task attributes.
pub const TASK_SIMPLE: u8 = 0;

/// Bytes of the command request header before the CDB.
pub const CMD_HEADER_LEN: usize = 19;
/// Bytes of the command response before the sense data.
pub const RESP_HEADER_LEN: usize = 12;

/// A command request: header and CDB padded to `cdb_size`.
pub fn command_request(lun: [u8; 8], tag: u64, cdb: &[u8], cdb_size: usize, o: Order) -> Vec<u8> {
    let mut r = Vec::with_capacity(CMD_HEADER_LEN + cdb_size);
    r.extend_from_slice(&lun);
    r.extend_from_slice(&o.put64(tag));
    r.extend_from_slice(&[TASK_SIMPLE, 0, 0]); // attribute, priority, crc
    r.extend_from_slice(cdb);
    r.resize(CMD_HEADER_LEN + cdb_size.max(cdb.len()), 0);
    r
}

/// Virtio response codes (section 5.6.6.1).
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
    /// TMF: the function is done (the same value as OK).
    pub const FUNCTION_COMPLETE: u8 = 0;
    pub const FUNCTION_SUCCEEDED: u8 = 10;
    pub const FUNCTION_REJECTED: u8 = 11;
    pub const INCORRECT_LUN: u8 = 12;

    pub fn name(r: u8) -> &'static str {
        match r {
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
            _ => "unknown",
        }
    }
}

/// SCSI status bytes (SAM).
pub const GOOD: u8 = 0x00;
pub const CHECK_CONDITION: u8 = 0x02;

/// A command response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CmdResponse {
    pub sense_len: u32,
    pub resid: u32,
    pub status_qualifier: u16,
    pub status: u8,
    pub response: u8,
    /// The sense bytes, `sense_len` of them (at most what fits).
    pub sense: Vec<u8>,
}

impl CmdResponse {
    pub fn decode(b: &[u8], o: Order) -> Self {
        let sense_len = o.u32(&b[0..]);
        let avail = b.len().saturating_sub(RESP_HEADER_LEN);
        let n = (sense_len as usize).min(avail);
        CmdResponse {
            sense_len,
            resid: o.u32(&b[4..]),
            status_qualifier: o.u16(&b[8..]),
            status: b[10],
            response: b[11],
            sense: b[RESP_HEADER_LEN..RESP_HEADER_LEN + n].to_vec(),
        }
    }

    pub fn sense(&self) -> Option<Sense> {
        Sense::decode(&self.sense)
    }
}

/// Sense key, additional sense code and qualifier (SPC-4 4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

pub const KEY_NOT_READY: u8 = 0x2;
pub const KEY_ILLEGAL_REQUEST: u8 = 0x5;
pub const KEY_UNIT_ATTENTION: u8 = 0x6;
pub const KEY_MEDIUM_ERROR: u8 = 0x3;
pub const KEY_HARDWARE_ERROR: u8 = 0x4;
pub const KEY_ABORTED_COMMAND: u8 = 0xb;

impl Sense {
    /// Fixed format (response code 0x70/0x71: key in byte 2, ASC/ASCQ in
    /// 12/13) or descriptor format (0x72/0x73: bytes 1, 2, 3).
    pub fn decode(b: &[u8]) -> Option<Sense> {
        match b.first()? & 0x7f {
            0x70 | 0x71 if b.len() >= 14 => Some(Sense {
                key: b[2] & 0xf,
                asc: b[12],
                ascq: b[13],
            }),
            0x72 | 0x73 if b.len() >= 4 => Some(Sense {
                key: b[1] & 0xf,
                asc: b[2],
                ascq: b[3],
            }),
            _ => None,
        }
    }
}

impl ufmt::uDisplay for Sense {
    fn fmt<W: ufmt::uWrite + ?Sized>(
        &self,
        f: &mut ufmt::Formatter<'_, W>,
    ) -> Result<(), W::Error> {
        use crate::fmt::HexW;
        ufmt::uwrite!(
            f,
            "sense key {} ASC/ASCQ {}/{}",
            HexW(self.key.into(), 1),
            HexW(self.asc.into(), 2),
            HexW(self.ascq.into(), 2)
        )
    }
}

/// CDBs (SPC-4, SBC-3). Lengths are the allocation or transfer lengths.
pub mod cdb {
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SENSE_6: u8 = 0x1a;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2a;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const MODE_SENSE_10: u8 = 0x5a;
    pub const READ_16: u8 = 0x88;
    pub const WRITE_16: u8 = 0x8a;
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    pub const SA_READ_CAPACITY_16: u8 = 0x10;
    pub const REPORT_LUNS: u8 = 0xa0;

    pub fn test_unit_ready() -> [u8; 6] {
        [TEST_UNIT_READY, 0, 0, 0, 0, 0]
    }

    pub fn inquiry(alloc: u16) -> [u8; 6] {
        let l = alloc.to_be_bytes();
        [INQUIRY, 0, 0, l[0], l[1], 0]
    }

    pub fn read_capacity_10() -> [u8; 10] {
        [READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    }

    pub fn read_capacity_16(alloc: u32) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[0] = SERVICE_ACTION_IN_16;
        c[1] = SA_READ_CAPACITY_16;
        c[10..14].copy_from_slice(&alloc.to_be_bytes());
        c
    }

    pub fn report_luns(alloc: u32) -> [u8; 12] {
        let mut c = [0u8; 12];
        c[0] = REPORT_LUNS;
        c[6..10].copy_from_slice(&alloc.to_be_bytes());
        c
    }

    /// All pages (0x3f), block descriptors allowed.
    pub fn mode_sense_6(alloc: u8) -> [u8; 6] {
        [MODE_SENSE_6, 0, 0x3f, 0, alloc, 0]
    }

    pub fn mode_sense_10(alloc: u16) -> [u8; 10] {
        let l = alloc.to_be_bytes();
        [MODE_SENSE_10, 0, 0x3f, 0, 0, 0, 0, l[0], l[1], 0]
    }

    /// The whole medium (LBA 0, 0 blocks).
    pub fn synchronize_cache_10() -> [u8; 10] {
        [SYNCHRONIZE_CACHE_10, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    }

    fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
        let mut c = [0u8; 10];
        c[0] = op;
        c[2..6].copy_from_slice(&lba.to_be_bytes());
        c[7..9].copy_from_slice(&blocks.to_be_bytes());
        c
    }

    fn rw16(op: u8, lba: u64, blocks: u32) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[0] = op;
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[10..14].copy_from_slice(&blocks.to_be_bytes());
        c
    }

    pub fn read_10(lba: u32, blocks: u16) -> [u8; 10] {
        rw10(READ_10, lba, blocks)
    }

    pub fn write_10(lba: u32, blocks: u16) -> [u8; 10] {
        rw10(WRITE_10, lba, blocks)
    }

    pub fn read_16(lba: u64, blocks: u32) -> [u8; 16] {
        rw16(READ_16, lba, blocks)
    }

    pub fn write_16(lba: u64, blocks: u32) -> [u8; 16] {
        rw16(WRITE_16, lba, blocks)
    }
}

/// Standard INQUIRY data, the fields we compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inquiry {
    /// Bits 7..5 of byte 0: 0 = a unit is connected, 3 = none can be.
    pub qualifier: u8,
    /// Bits 4..0: 0 = direct-access block device, 0x1f = unknown.
    pub device_type: u8,
    pub vendor: [u8; 8],
    pub product: [u8; 16],
}

impl Inquiry {
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() < 32 {
            return None;
        }
        let mut vendor = [0; 8];
        vendor.copy_from_slice(&b[8..16]);
        let mut product = [0; 16];
        product.copy_from_slice(&b[16..32]);
        Some(Inquiry {
            qualifier: b[0] >> 5,
            device_type: b[0] & 0x1f,
            vendor,
            product,
        })
    }
}

/// READ CAPACITY (10): the last LBA and the block length.
pub fn decode_capacity_10(b: &[u8]) -> Option<(u32, u32)> {
    let w = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (b.len() >= 8).then(|| (w(0), w(4)))
}

/// READ CAPACITY (16): the last LBA and the block length.
pub fn decode_capacity_16(b: &[u8]) -> Option<(u64, u32)> {
    if b.len() < 12 {
        return None;
    }
    let mut l = [0u8; 8];
    l.copy_from_slice(&b[0..8]);
    Some((
        u64::from_be_bytes(l),
        u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
    ))
}

/// REPORT LUNS: the LUNs listed (peripheral or flat addressing, as
/// QEMU's `store_lun` writes them); None if the list is cut short or an
/// entry uses another addressing method.
pub fn decode_report_luns(b: &[u8]) -> Option<Vec<u16>> {
    if b.len() < 8 {
        return None;
    }
    let list = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let entries = b.get(8..8 + list)?;
    entries
        .chunks_exact(8)
        .map(|e| match e[0] >> 6 {
            0 if e[0] == 0 => Some(u16::from(e[1])),
            1 => Some(u16::from(e[0] & 0x3f) << 8 | u16::from(e[1])),
            _ => None,
        })
        .collect()
}

/// Task management functions (section 5.6.6.2).
pub const T_TMF: u32 = 0;
pub const TMF_ABORT_TASK: u32 = 0;
pub const TMF_ABORT_TASK_SET: u32 = 1;
pub const TMF_LOGICAL_UNIT_RESET: u32 = 5;
pub const TMF_REQUEST_LEN: usize = 24;
pub const TMF_RESPONSE_LEN: usize = 1;

pub fn tmf_request(subtype: u32, lun: [u8; 8], tag: u64, o: Order) -> [u8; TMF_REQUEST_LEN] {
    let mut r = [0u8; TMF_REQUEST_LEN];
    r[0..4].copy_from_slice(&o.put32(T_TMF));
    r[4..8].copy_from_slice(&o.put32(subtype));
    r[8..16].copy_from_slice(&lun);
    r[16..24].copy_from_slice(&o.put64(tag));
    r
}

/// Events (section 5.6.6.3).
pub const T_NO_EVENT: u32 = 0;
pub const T_TRANSPORT_RESET: u32 = 1;
pub const T_PARAM_CHANGE: u32 = 3;
pub const T_EVENTS_MISSED: u32 = 0x8000_0000;
/// Reasons of a TRANSPORT_RESET event (the spec's and Linux's
/// virtio_scsi.h values).
pub const EVT_RESET_HARD: u32 = 0;
pub const EVT_RESET_RESCAN: u32 = 1;
pub const EVT_RESET_REMOVED: u32 = 2;
pub const EVENT_LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Without the EVENTS_MISSED flag.
    pub event: u32,
    pub missed: bool,
    pub lun: [u8; 8],
    pub reason: u32,
}

impl Event {
    pub fn decode(b: &[u8; EVENT_LEN], o: Order) -> Self {
        let e = o.u32(&b[0..]);
        let mut lun = [0; 8];
        lun.copy_from_slice(&b[4..12]);
        Event {
            event: e & !T_EVENTS_MISSED,
            missed: e & T_EVENTS_MISSED != 0,
            lun,
            reason: o.u32(&b[12..]),
        }
    }

    /// Target and LUN of the event's LUN field, if it names one.
    pub fn target_lun(&self) -> Option<(u8, u16)> {
        (self.lun[0] == 1).then(|| {
            (
                self.lun[1],
                u16::from(self.lun[2] & 0x3f) << 8 | u16::from(self.lun[3]),
            )
        })
    }
}

/// Where a request's parts lie in its slot's memory.
const REQ_AT: usize = 0;
const RESP_AT: usize = 1024;
pub const DATA_AT: usize = 4096;
/// Largest CDB and sense area a slot holds.
const REQ_MAX: usize = RESP_AT - REQ_AT;
const RESP_MAX: usize = DATA_AT - RESP_AT;

/// Which way a command's data goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data {
    None,
    /// The device reads `len` bytes the caller put at the slot's data.
    Out(u32),
    /// The device writes up to `len` bytes there.
    In(u32),
}

/// Memory for one request in flight: header, response and data. It is
/// the device's from the first submit until the reset (the transport keeps
/// it), so a driver reuses slots rather than making new ones.
pub struct Slot {
    pub mem: Rc<DmaMemory>,
    pub data_cap: usize,
}

impl Slot {
    pub fn new(data_cap: usize) -> Self {
        Slot {
            mem: Rc::new(DmaMemory::new(DATA_AT + data_cap)),
            data_cap,
        }
    }
}

/// The device's header sizes, from its configuration.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub order: Order,
    pub cdb_size: usize,
    pub sense_size: usize,
}

impl Layout {
    pub fn request_len(&self) -> usize {
        CMD_HEADER_LEN + self.cdb_size
    }

    pub fn response_len(&self) -> usize {
        RESP_HEADER_LEN + self.sense_size
    }

    /// The chain of one command in `slot`, written into it; None if the
    /// headers or the data do not fit the slot.
    pub fn command_chain<'a>(
        &self,
        slot: &'a Slot,
        lun: [u8; 8],
        tag: u64,
        cdb: &[u8],
        data: Data,
    ) -> Option<Vec<DmaBuffer<'a>>> {
        let req = command_request(lun, tag, cdb, self.cdb_size, self.order);
        let resp_len = self.response_len();
        if req.len() > REQ_MAX || resp_len > RESP_MAX {
            return None;
        }
        let data_len = match data {
            Data::None => 0,
            Data::Out(n) | Data::In(n) => n,
        };
        if data_len as usize > slot.data_cap {
            return None;
        }
        slot.mem.write(REQ_AT, &req);
        // A stale response must not pass for the device's.
        slot.mem.clear(RESP_AT, resp_len);
        let part = |offset, len, device_writable| DmaBuffer {
            mem: &slot.mem,
            offset,
            len: len as u32,
            device_writable,
        };
        let mut chain = alloc::vec![part(REQ_AT, req.len(), false)];
        if let Data::Out(n) = data {
            chain.push(part(DATA_AT, n as usize, false));
        }
        chain.push(part(RESP_AT, resp_len, true));
        if let Data::In(n) = data {
            chain.push(part(DATA_AT, n as usize, true));
        }
        Some(chain)
    }

    /// The response the device wrote into `slot`.
    pub fn response(&self, slot: &Slot) -> CmdResponse {
        let mut b = alloc::vec![0u8; self.response_len()];
        slot.mem.read(RESP_AT, &mut b);
        CmdResponse::decode(&b, self.order)
    }
}

/// The TMF chain of one request in `slot`, written into it.
pub fn tmf_chain<'a>(slot: &'a Slot, request: &[u8; TMF_REQUEST_LEN]) -> Vec<DmaBuffer<'a>> {
    slot.mem.write(REQ_AT, request);
    // 0xff: no response code, so an untouched byte cannot pass for one.
    slot.mem.store(RESP_AT, 0xff);
    alloc::vec![
        DmaBuffer {
            mem: &slot.mem,
            offset: REQ_AT,
            len: TMF_REQUEST_LEN as u32,
            device_writable: false,
        },
        DmaBuffer {
            mem: &slot.mem,
            offset: RESP_AT,
            len: TMF_RESPONSE_LEN as u32,
            device_writable: true,
        },
    ]
}

pub fn tmf_response(slot: &Slot) -> u8 {
    slot.mem.load(RESP_AT)
}

/// A device-writable event buffer in `slot`, cleared.
pub fn event_chain(slot: &Slot) -> Vec<DmaBuffer<'_>> {
    slot.mem.clear(RESP_AT, EVENT_LEN);
    alloc::vec![DmaBuffer {
        mem: &slot.mem,
        offset: RESP_AT,
        len: EVENT_LEN as u32,
        device_writable: true,
    }]
}

pub fn event(slot: &Slot, o: Order) -> Event {
    let mut b = [0u8; EVENT_LEN];
    slot.mem.read(RESP_AT, &mut b);
    Event::decode(&b, o)
}

/// A driven adapter: its queues and header layout.
pub struct Scsi {
    pub config: ScsiConfig,
    pub layout: Layout,
    pub control: Queue,
    pub event: Queue,
    pub requests: Vec<Queue>,
}

impl Scsi {
    /// Reads the configuration and sets up the control, event and every
    /// request queue the configuration announces.
    pub fn setup<T: Transport + ?Sized>(t: &mut T, features: u64) -> Result<Self, DriveError> {
        let config = read_config(t)?;
        let layout = Layout {
            order: Order::for_revision(t.revision()),
            cdb_size: config.cdb_size as usize,
            sense_size: config.sense_size as usize,
        };
        // VIRTIO_F_RING_PACKED negotiated: every queue is packed.
        let packed = has(features, F_RING_PACKED);
        let control = setup_queue(t, CONTROL_QUEUE, features, packed)?;
        let event = setup_queue(t, EVENT_QUEUE, features, packed)?;
        let mut requests = Vec::new();
        for i in 0..config.num_queues.min(64) as u16 {
            requests.push(setup_queue(t, FIRST_REQUEST_QUEUE + i, features, packed)?);
        }
        Ok(Scsi {
            config,
            layout,
            control,
            event,
            requests,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_follows_the_revision_byte_order() {
        let mut b = [0u8; CONFIG_LEN];
        b[0..4].copy_from_slice(&1u32.to_le_bytes());
        b[20..24].copy_from_slice(&96u32.to_le_bytes());
        b[24..28].copy_from_slice(&32u32.to_le_bytes());
        b[30..32].copy_from_slice(&255u16.to_le_bytes());
        b[32..36].copy_from_slice(&16383u32.to_le_bytes());
        let c = ScsiConfig::decode(&b, Order::Little);
        assert_eq!(
            (
                c.num_queues,
                c.sense_size,
                c.cdb_size,
                c.max_target,
                c.max_lun
            ),
            (1, 96, 32, 255, 16383)
        );
        // The same bytes read as legacy (big-endian) are something else.
        let legacy = ScsiConfig::decode(&b, Order::Big);
        assert_eq!(legacy.num_queues, 0x0100_0000);
        assert_eq!(legacy.max_target, 0xff00);
    }

    #[test]
    fn lun_addressing_is_flat_space() {
        assert_eq!(lun_field(0, 0), [1, 0, 0x40, 0, 0, 0, 0, 0]);
        assert_eq!(lun_field(3, 0x1234), [1, 3, 0x52, 0x34, 0, 0, 0, 0]);
        let e = Event {
            event: T_TRANSPORT_RESET,
            missed: false,
            lun: lun_field(7, 300),
            reason: 0,
        };
        assert_eq!(e.target_lun(), Some((7, 300)));
    }

    #[test]
    fn command_request_layout() {
        let r = command_request(
            lun_field(1, 2),
            0x0102,
            &cdb::read_10(5, 1),
            32,
            Order::Little,
        );
        assert_eq!(r.len(), 51);
        assert_eq!(&r[0..8], &[1, 1, 0x40, 2, 0, 0, 0, 0]);
        assert_eq!(&r[8..16], &[2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&r[16..19], &[0, 0, 0]);
        assert_eq!(&r[19..29], &[0x28, 0, 0, 0, 0, 5, 0, 0, 1, 0]);
        assert!(r[29..].iter().all(|&b| b == 0));
        let be = command_request(lun_field(1, 2), 0x0102, &[0], 32, Order::Big);
        assert_eq!(&be[8..16], &[0, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn responses_and_sense_decode() {
        let mut b = vec![0u8; RESP_HEADER_LEN + 96];
        b[0..4].copy_from_slice(&18u32.to_be_bytes());
        b[4..8].copy_from_slice(&7u32.to_be_bytes());
        b[10] = CHECK_CONDITION;
        b[11] = response::OK;
        b[12] = 0x70;
        b[14] = KEY_ILLEGAL_REQUEST;
        b[24] = 0x20;
        let r = CmdResponse::decode(&b, Order::Big);
        assert_eq!((r.sense_len, r.resid, r.status), (18, 7, CHECK_CONDITION));
        assert_eq!(
            r.sense(),
            Some(Sense {
                key: 5,
                asc: 0x20,
                ascq: 0
            })
        );
        // Read little-endian the sense length is huge: clamped to what fits.
        assert_eq!(CmdResponse::decode(&b, Order::Little).sense.len(), 96);
        assert_eq!(
            Sense::decode(&[0x72, 0x06, 0x29, 0x00]),
            Some(Sense {
                key: 6,
                asc: 0x29,
                ascq: 0
            })
        );
        assert_eq!(Sense::decode(&[0x70, 0, 5]), None, "cut short");
        assert_eq!(Sense::decode(&[0x00; 18]), None, "no valid response code");
    }

    #[test]
    fn cdbs_are_big_endian() {
        assert_eq!(cdb::inquiry(0x124), [0x12, 0, 0, 1, 0x24, 0]);
        assert_eq!(
            cdb::read_16(0x0102_0304_0506_0708, 0x0a0b_0c0d),
            [0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0xa, 0xb, 0xc, 0xd, 0, 0]
        );
        assert_eq!(
            cdb::write_10(0x01020304, 0x0506)[..9],
            [0x2a, 0, 1, 2, 3, 4, 0, 5, 6]
        );
        let rc16 = cdb::read_capacity_16(32);
        assert_eq!((rc16[0], rc16[1], rc16[13]), (0x9e, 0x10, 32));
        assert_eq!(cdb::report_luns(0x100)[6..10], [0, 0, 1, 0]);
        assert_eq!(cdb::mode_sense_10(0x200)[7..9], [2, 0]);
    }

    #[test]
    fn data_decoders() {
        let mut inq = [0u8; 36];
        inq[8..16].copy_from_slice(b"QEMU    ");
        inq[16..32].copy_from_slice(b"QEMU HARDDISK   ");
        let i = Inquiry::decode(&inq).unwrap();
        assert_eq!((i.qualifier, i.device_type), (0, 0));
        assert_eq!(&i.vendor, b"QEMU    ");
        inq[0] = 0x7f;
        let none = Inquiry::decode(&inq).unwrap();
        assert_eq!((none.qualifier, none.device_type), (3, 0x1f));
        assert_eq!(Inquiry::decode(&inq[..31]), None);
        assert_eq!(
            decode_capacity_10(&[0, 0, 0xff, 0xff, 0, 0, 2, 0]),
            Some((0xffff, 512))
        );
        let mut rc = [0u8; 32];
        rc[7] = 9;
        rc[10] = 0x10;
        assert_eq!(decode_capacity_16(&rc), Some((9, 4096)));
        // LUN 0, LUN 1 (peripheral), LUN 300 (flat).
        let mut rl = vec![0u8; 32];
        rl[3] = 24;
        rl[17] = 1;
        rl[24] = 0x41;
        rl[25] = 44;
        assert_eq!(decode_report_luns(&rl), Some(vec![0, 1, 300]));
        assert_eq!(decode_report_luns(&rl[..30]), None, "cut short");
        rl[16] = 0x80;
        assert_eq!(decode_report_luns(&rl), None, "other addressing");
    }

    #[test]
    fn tmf_and_events() {
        let r = tmf_request(TMF_LOGICAL_UNIT_RESET, lun_field(0, 1), 9, Order::Little);
        assert_eq!(&r[0..8], &[0, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(&r[8..12], &[1, 0, 0x40, 1]);
        assert_eq!(r[16], 9);
        let rb = tmf_request(TMF_ABORT_TASK, lun_field(0, 1), 9, Order::Big);
        assert_eq!((rb[7], rb[23]), (0, 9));
        let mut e = [0u8; EVENT_LEN];
        e[0..4].copy_from_slice(&(T_EVENTS_MISSED | T_TRANSPORT_RESET).to_le_bytes());
        e[4..12].copy_from_slice(&[1, 2, 0, 3, 0, 0, 0, 0]);
        e[12..16].copy_from_slice(&2u32.to_le_bytes());
        let ev = Event::decode(&e, Order::Little);
        assert!(ev.missed);
        assert_eq!(
            (ev.event, ev.reason),
            (T_TRANSPORT_RESET, EVT_RESET_REMOVED)
        );
        assert_eq!(ev.target_lun(), Some((2, 3)));
    }

    #[test]
    fn chains_put_each_header_in_its_own_descriptor() {
        let slot = Slot::new(8192);
        let l = Layout {
            order: Order::Little,
            cdb_size: 32,
            sense_size: 96,
        };
        let read = l
            .command_chain(
                &slot,
                lun_field(0, 0),
                1,
                &cdb::read_10(0, 1),
                Data::In(512),
            )
            .unwrap();
        let shape: Vec<_> = read
            .iter()
            .map(|b| (b.offset, b.len, b.device_writable))
            .collect();
        assert_eq!(
            shape,
            [(0, 51, false), (1024, 108, true), (4096, 512, true)]
        );
        let write = l
            .command_chain(
                &slot,
                lun_field(0, 0),
                1,
                &cdb::write_10(0, 1),
                Data::Out(512),
            )
            .unwrap();
        let shape: Vec<_> = write
            .iter()
            .map(|b| (b.offset, b.len, b.device_writable))
            .collect();
        assert_eq!(
            shape,
            [(0, 51, false), (4096, 512, false), (1024, 108, true)]
        );
        assert!(l
            .command_chain(&slot, lun_field(0, 0), 1, &[0], Data::In(8193))
            .is_none());
        let too_big = Layout {
            cdb_size: 2000,
            ..l
        };
        assert!(too_big
            .command_chain(&slot, lun_field(0, 0), 1, &[0], Data::None)
            .is_none());
    }
}
