//! SCHIB, SCSW, IRB, ORB, CCW and SENSE ID data, as bytes in the
//! architecture's (big-endian) layout.

use crate::sccb::{get16, get32};

/// Subsystem-identification word of subchannel `n` in subchannel set `ssid`.
pub const fn subchannel_id(ssid: u8, n: u16) -> u32 {
    0x0001_0000 | ((ssid as u32 & 3) << 17) | n as u32
}

/// The same with an explicit channel-subsystem image (needs MCSS-E enabled).
pub const fn subchannel_id_in(cssid: u8, ssid: u8, n: u16) -> u32 {
    (cssid as u32) << 24 | 0x0008_0000 | subchannel_id(ssid, n)
}

pub fn split_subchannel_id(sid: u32) -> (u8, u16) {
    (((sid >> 17) & 3) as u8, sid as u16)
}

pub const SCHIB_SIZE: usize = 52;
pub const IRB_SIZE: usize = 96;
pub const ORB_SIZE: usize = 32;

/// PMCW word-1 flag bits (as a u16 at byte 4).
pub const PMCW_ENABLED: u16 = 0x0080;
pub const PMCW_DEVNO_VALID: u16 = 0x0001;
const PMCW_ISC_SHIFT: u16 = 11;
const PMCW_ISC_MASK: u16 = 0x3800;

/// The path-management control word, the part of the SCHIB we use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pmcw {
    pub intparm: u32,
    pub flags: u16,
    pub devno: u16,
    pub pim: u8,
    pub pam: u8,
    pub pom: u8,
    pub chpids: [u8; 8],
}

impl Pmcw {
    pub fn enabled(&self) -> bool {
        self.flags & PMCW_ENABLED != 0
    }
    pub fn devno_valid(&self) -> bool {
        self.flags & PMCW_DEVNO_VALID != 0
    }
    pub fn isc(&self) -> u8 {
        ((self.flags & PMCW_ISC_MASK) >> PMCW_ISC_SHIFT) as u8
    }
}

pub fn parse_pmcw(schib: &[u8; SCHIB_SIZE]) -> Pmcw {
    let mut chpids = [0u8; 8];
    chpids.copy_from_slice(&schib[12..20]);
    Pmcw {
        intparm: get32(schib, 0),
        flags: get16(schib, 4),
        devno: get16(schib, 6),
        pim: schib[11],
        pam: schib[10 + 3],
        pom: schib[10 + 2],
        chpids,
    }
}

/// Sets enable, ISC and interruption parameter in a SCHIB for MSCH.
pub fn set_enabled(schib: &mut [u8; SCHIB_SIZE], on: bool, isc: u8, intparm: u32) {
    let mut flags = get16(schib, 4) & !(PMCW_ENABLED | PMCW_ISC_MASK);
    if on {
        flags |= PMCW_ENABLED | (u16::from(isc & 7) << PMCW_ISC_SHIFT);
    }
    schib[0..4].copy_from_slice(&intparm.to_be_bytes());
    schib[4..6].copy_from_slice(&flags.to_be_bytes());
}

/// SCSW function, activity and status control bits (word 0, low half).
pub const FCTL_START: u32 = 0x4000;
pub const FCTL_HALT: u32 = 0x2000;
pub const FCTL_CLEAR: u32 = 0x1000;
pub const STCTL_ALERT: u32 = 0x10;
pub const STCTL_PRIMARY: u32 = 0x04;
pub const STCTL_SECONDARY: u32 = 0x02;
pub const STCTL_PENDING: u32 = 0x01;

/// Device status bits.
pub const DEV_ATTENTION: u8 = 0x80;
pub const DEV_BUSY: u8 = 0x10;
pub const DEV_CHANNEL_END: u8 = 0x08;
pub const DEV_DEVICE_END: u8 = 0x04;
pub const DEV_UNIT_CHECK: u8 = 0x02;
pub const DEV_UNIT_EXCEPTION: u8 = 0x01;

/// Subchannel status bits.
pub const SCH_INCORRECT_LENGTH: u8 = 0x40;
pub const SCH_PROGRAM_CHECK: u8 = 0x20;
pub const SCH_PROTECTION_CHECK: u8 = 0x10;
pub const SCH_CHAINING_CHECK: u8 = 0x01;

/// Subchannel-status word.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scsw {
    pub flags: u32,
    pub ccw_addr: u32,
    pub dstat: u8,
    pub cstat: u8,
    pub count: u16,
}

impl Scsw {
    pub fn parse(b: &[u8]) -> Scsw {
        Scsw {
            flags: get32(b, 0),
            ccw_addr: get32(b, 4),
            dstat: b[8],
            cstat: b[9],
            count: get16(b, 10),
        }
    }
    pub fn fctl(&self) -> u32 {
        self.flags & 0x7000
    }
    pub fn stctl(&self) -> u32 {
        self.flags & 0x1f
    }
    /// Deferred condition code (bits 6-7).
    pub fn cc(&self) -> u8 {
        ((self.flags >> 24) & 3) as u8
    }
    pub fn is_final(&self) -> bool {
        self.stctl() & (STCTL_PRIMARY | STCTL_ALERT) != 0
    }
}

/// Interruption-response block: the SCSW and the extended status word's
/// first word (the ECW and EMW are not used).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Irb {
    pub scsw: Scsw,
    pub esw0: u32,
}

impl Irb {
    pub fn parse(b: &[u8; IRB_SIZE]) -> Irb {
        Irb {
            scsw: Scsw::parse(&b[0..12]),
            esw0: get32(b, 12),
        }
    }
}

/// CCW flags (format 1).
pub const CCW_CHAIN_DATA: u8 = 0x80;
pub const CCW_CHAIN_COMMAND: u8 = 0x40;
pub const CCW_SLI: u8 = 0x20;
pub const CCW_SKIP: u8 = 0x10;

/// Generic channel commands.
pub const CMD_NOOP: u8 = 0x03;
pub const CMD_BASIC_SENSE: u8 = 0x04;
pub const CMD_TIC: u8 = 0x08;
pub const CMD_SENSE_ID: u8 = 0xe4;

/// A format-1 CCW: data address below 2 GiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(8))]
pub struct Ccw1 {
    pub cmd: u8,
    pub flags: u8,
    pub count: u16,
    pub data: u32,
}

impl Ccw1 {
    pub fn new(cmd: u8, flags: u8, count: u16, data: u32) -> Ccw1 {
        Ccw1 {
            cmd,
            flags,
            count,
            data,
        }
    }
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.cmd;
        b[1] = self.flags;
        b[2..4].copy_from_slice(&self.count.to_be_bytes());
        b[4..8].copy_from_slice(&self.data.to_be_bytes());
        b
    }
}

/// A format-1 ORB: prefetch allowed, all paths, 31-bit channel program.
pub fn build_orb(intparm: u32, cpa: u32) -> [u8; ORB_SIZE] {
    let mut b = [0u8; ORB_SIZE];
    b[0..4].copy_from_slice(&intparm.to_be_bytes());
    b[5] = 0x80 | 0x40; // format-1 CCWs, prefetch
    b[6] = 0xff; // logical-path mask
    b[8..12].copy_from_slice(&cpa.to_be_bytes());
    b
}

/// SENSE ID answer: control unit type/model, device type/model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenseId {
    pub cu_type: u16,
    pub cu_model: u8,
    pub dev_type: u16,
    pub dev_model: u8,
}

/// Control-unit type of every virtio-ccw device.
pub const CU_TYPE_VIRTIO: u16 = 0x3832;

/// Decodes SENSE ID data of `len` bytes received; needs the 7-byte basic part.
pub fn parse_sense_id(b: &[u8]) -> Option<SenseId> {
    (b.len() >= 7 && b[0] == 0xff).then(|| SenseId {
        cu_type: get16(b, 1),
        cu_model: b[3],
        dev_type: get16(b, 4),
        dev_model: b[6],
    })
}

/// The answer to CHSC Store Channel Subsystem Characteristics: response
/// length and code, and the first words of the general and of the CHSC
/// characteristics (bit 0 is the top bit of word 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Characteristics {
    pub length: u16,
    pub code: u16,
    pub general: [u32; 4],
    pub chsc: [u32; 4],
}

/// Where the CHSC characteristics start in the response: after the
/// 8-byte header and 510 words of general characteristics.
const SCSC_CHSC_CHARS: usize = 8 + 510 * 4;

impl Characteristics {
    /// Decodes a response block of at least [`SCSC_CHSC_CHARS`] + 16 bytes.
    pub fn decode(r: &[u8]) -> Self {
        let word = |at: usize| u32::from_be_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]);
        Characteristics {
            length: u16::from_be_bytes([r[0], r[1]]),
            code: u16::from_be_bytes([r[2], r[3]]),
            general: core::array::from_fn(|i| word(8 + 4 * i)),
            chsc: core::array::from_fn(|i| word(SCSC_CHSC_CHARS + 4 * i)),
        }
    }

    /// Bit `n` of the general characteristics (within the words kept).
    pub fn general_bit(&self, n: usize) -> bool {
        self.general
            .get(n / 32)
            .is_some_and(|w| w & (0x8000_0000 >> (n % 32)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(subchannel_id(0, 0), 0x0001_0000);
        assert_eq!(subchannel_id(1, 5), 0x0003_0005);
        assert_eq!(subchannel_id(3, 0xffff), 0x0007_ffff);
        assert_eq!(split_subchannel_id(0x0007_0012), (3, 0x12));
        assert_eq!(subchannel_id_in(0xfe, 1, 3), 0xfe0b_0003);
    }

    #[test]
    fn schib_enable_round_trip() {
        let mut s = [0u8; SCHIB_SIZE];
        s[4..6].copy_from_slice(&PMCW_DEVNO_VALID.to_be_bytes());
        s[6..8].copy_from_slice(&0x0005u16.to_be_bytes());
        set_enabled(&mut s, true, 3, 0xabcd);
        let p = parse_pmcw(&s);
        assert!(p.enabled() && p.devno_valid());
        assert_eq!((p.isc(), p.intparm, p.devno), (3, 0xabcd, 5));
        set_enabled(&mut s, false, 3, 0);
        assert!(!parse_pmcw(&s).enabled());
    }

    #[test]
    fn scsw_and_irb() {
        let mut b = [0u8; IRB_SIZE];
        b[0..4].copy_from_slice(
            &(0x0000_4000u32 | STCTL_PRIMARY | STCTL_SECONDARY | STCTL_PENDING).to_be_bytes(),
        );
        b[4..8].copy_from_slice(&0x1000u32.to_be_bytes());
        b[8] = DEV_CHANNEL_END | DEV_DEVICE_END;
        b[10..12].copy_from_slice(&3u16.to_be_bytes());
        let irb = Irb::parse(&b);
        assert!(irb.scsw.is_final());
        assert_eq!(irb.scsw.fctl(), FCTL_START);
        assert_eq!((irb.scsw.ccw_addr, irb.scsw.count), (0x1000, 3));
        assert_eq!(irb.scsw.dstat, 0x0c);
    }

    #[test]
    fn ccw_orb_sense_id() {
        let c = Ccw1::new(CMD_SENSE_ID, CCW_SLI, 256, 0x0012_3456).to_bytes();
        assert_eq!(c, [0xe4, 0x20, 0x01, 0x00, 0x00, 0x12, 0x34, 0x56]);
        let o = build_orb(7, 0x2000);
        assert_eq!(&o[0..12], &[0, 0, 0, 7, 0, 0xc0, 0xff, 0, 0, 0, 0x20, 0]);
        let id = parse_sense_id(&[0xff, 0x38, 0x32, 0x02, 0x00, 0x00, 0x00]).unwrap();
        assert_eq!((id.cu_type, id.cu_model), (CU_TYPE_VIRTIO, 2));
        assert_eq!(parse_sense_id(&[0x00; 7]), None);
        assert_eq!(parse_sense_id(&[0xff; 6]), None);
    }
}
