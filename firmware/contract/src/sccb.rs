//! Service-call control blocks (SCLP), built and decoded as plain bytes so
//! the layout is checked on the host.
//!
//! Every SCCB starts with an 8-byte header: length (u16), function code,
//! control mask (3 bytes), response code (u16). All fields are big-endian.

pub const CMD_READ_SCP_INFO: u32 = 0x0002_0001;
pub const CMD_READ_SCP_INFO_FORCED: u32 = 0x0012_0001;
pub const CMD_WRITE_EVENT_DATA: u32 = 0x0076_0005;
pub const CMD_WRITE_EVENT_MASK: u32 = 0x0078_0005;

pub const RC_NORMAL_READ: u16 = 0x0010;
pub const RC_NORMAL: u16 = 0x0020;
pub const RC_INSUFFICIENT_LENGTH: u16 = 0x0300;

pub const EVENT_MESSAGE: u8 = 0x02;
pub const EVENT_ASCII: u8 = 0x1a;

/// The SCCB page: SCCBs must not cross a 4 KiB boundary.
pub const SCCB_SIZE: usize = 4096;
const HEADER: usize = 8;
const EVENT_HEADER: usize = 6;
/// Line mode: MDB header (12), GO object (56), MTO header (10).
const MDB_HEADER: usize = 12;
const GO_LEN: usize = 56;
const MTO_HEADER: usize = 10;
/// Longest text one SCCB carries, whichever console it goes to.
pub const MAX_TEXT: usize = SCCB_SIZE - HEADER - EVENT_HEADER - MDB_HEADER - GO_LEN - MTO_HEADER;

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

pub fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn get64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

pub fn response_code(sccb: &[u8]) -> u16 {
    get16(sccb, 6)
}

fn header(sccb: &mut [u8], len: usize) {
    sccb[..HEADER].fill(0);
    put16(sccb, 0, len as u16);
}

/// Bit of event type `t` in an event mask of `len` bytes (type 1 is the top bit).
pub fn event_mask_bit(t: u8, len: usize) -> u64 {
    1u64 << (len * 8 - usize::from(t))
}

/// Write Event Mask with 4-byte masks: we receive nothing, we send both
/// console kinds.
pub fn build_event_mask(sccb: &mut [u8]) -> usize {
    build_event_mask_receiving(sccb, false)
}

/// [`build_event_mask`], also receiving configuration-management events
/// (a CPU plugged) where `config` says so.
pub fn build_event_mask_receiving(sccb: &mut [u8], config: bool) -> usize {
    let len = HEADER + 4 + 4 * 4;
    sccb[..len].fill(0);
    header(sccb, len);
    put16(sccb, HEADER + 2, 4);
    if config {
        put32(sccb, HEADER + 4, event_mask_bit(EVENT_CONFIG_MGT, 4) as u32);
    }
    let send = event_mask_bit(EVENT_MESSAGE, 4) | event_mask_bit(EVENT_ASCII, 4);
    put32(sccb, HEADER + 4 + 4, send as u32);
    len
}

/// Configuration-management data: the event the SCLP sends when CPUs were
/// plugged (qualifier [`CONFIG_QUALIFIER_CPU`]).
pub const EVENT_CONFIG_MGT: u8 = 0x04;
pub const CONFIG_QUALIFIER_CPU: u8 = 1;
pub const CMD_READ_EVENT_DATA: u32 = 0x0077_0005;
/// Read Event Data's answer when no event was pending.
pub const RC_NO_EVENTS: u16 = 0x60f0;

/// An event buffer whose length does not fit: where it starts, the
/// length it gives, and the SCCB's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEvent {
    pub at: usize,
    pub len: usize,
    pub sccb_len: usize,
}

impl ufmt::uDisplay for BadEvent {
    fn fmt<W: ufmt::uWrite + ?Sized>(
        &self,
        f: &mut ufmt::Formatter<'_, W>,
    ) -> Result<(), W::Error> {
        ufmt::uwrite!(
            f,
            "event buffer at {} of length {} in an SCCB of {} bytes",
            self.at,
            self.len,
            self.sccb_len
        )
    }
}

/// Read Event Data into an SCCB of `len` bytes.
pub fn build_read_event(sccb: &mut [u8], len: usize) -> usize {
    sccb[..len].fill(0);
    header(sccb, len);
    len
}

/// The event buffers of a Read Event Data answer: (type, the buffer's
/// bytes after its 6-byte header), up to the SCCB's length or a buffer of
/// length 0; a buffer running past the SCCB's length is an error.
pub fn events(sccb: &[u8]) -> Result<alloc::vec::Vec<(u8, &[u8])>, BadEvent> {
    let len = usize::from(get16(sccb, 0)).min(sccb.len());
    let mut at = HEADER;
    let mut out = alloc::vec::Vec::new();
    while at + EVENT_HEADER <= len {
        let n = usize::from(get16(sccb, at));
        // QEMU leaves the SCCB's length as we gave it: the list ends at
        // the first empty buffer.
        if n == 0 {
            break;
        }
        if n < EVENT_HEADER || at + n > len {
            return Err(BadEvent {
                at,
                len: n,
                sccb_len: len,
            });
        }
        out.push((sccb[at + 2], &sccb[at + EVENT_HEADER..at + n]));
        at += n;
    }
    Ok(out)
}

/// The event types the SCLP accepts from us, from a Write Event Mask reply.
pub fn sclp_receive_mask(sccb: &[u8]) -> u32 {
    get32(sccb, HEADER + 4 + 8)
}

/// Write Event Data, VT220 (ASCII) event carrying `text` unchanged.
pub fn build_ascii_write(sccb: &mut [u8], text: &[u8]) -> usize {
    let text = &text[..text.len().min(MAX_TEXT)];
    let ev = EVENT_HEADER + text.len();
    let len = HEADER + ev;
    header(sccb, len);
    put16(sccb, HEADER, ev as u16);
    sccb[HEADER + 2] = EVENT_ASCII;
    sccb[HEADER + 3..HEADER + EVENT_HEADER].fill(0);
    sccb[HEADER + EVENT_HEADER..len].copy_from_slice(text);
    len
}

/// Write Event Data, line-mode message: one MDB with a general object and a
/// message-text object holding one line of `text` in EBCDIC code page `cp`
/// (no newline).
pub fn build_line_write(sccb: &mut [u8], text: &[u8], cp: crate::ebcdic::CodePage) -> usize {
    let text = &text[..text.len().min(MAX_TEXT)];
    let mto = MTO_HEADER + text.len();
    let mdb = MDB_HEADER + GO_LEN + mto;
    let ev = EVENT_HEADER + mdb;
    let len = HEADER + ev;
    sccb[..len].fill(0);
    header(sccb, len);
    let mut at = HEADER;
    put16(sccb, at, ev as u16);
    sccb[at + 2] = EVENT_MESSAGE;
    at += EVENT_HEADER;
    put16(sccb, at, mdb as u16);
    put16(sccb, at + 2, 0x0001);
    put32(sccb, at + 4, 0xd4c4_c240); // "MDB " in EBCDIC
    put32(sccb, at + 8, 1);
    at += MDB_HEADER;
    put16(sccb, at, GO_LEN as u16);
    put16(sccb, at + 2, 0x0001);
    at += GO_LEN;
    put16(sccb, at, mto as u16);
    put16(sccb, at + 2, 0x0004);
    put16(sccb, at + 4, 0x1000); // end of text
    at += MTO_HEADER;
    for (o, &c) in sccb[at..len].iter_mut().zip(text) {
        *o = crate::ebcdic::encode(cp, c);
    }
    len
}

/// Read SCP Info (or Read CPU Info) request of `len` bytes.
pub fn build_read_info(sccb: &mut [u8], len: usize) -> usize {
    sccb[..len].fill(0);
    header(sccb, len);
    len
}

pub const CMD_READ_CPU_INFO: u32 = 0x0001_0001;

/// The bytes Read SCP Info needs for `max_cpus` CPUs (what QEMU requires:
/// its 144-byte block plus 16 bytes a CPU). Above 247 CPUs that is more
/// than a 4 KiB SCCB, which only the extended-length-SCCB facility allows.
pub fn read_info_len(max_cpus: usize) -> usize {
    144 + 16 * max_cpus
}

/// The largest CPU count there is (s390x addresses up to 248 CPUs in QEMU;
/// 256 covers every machine).
pub const MAX_CPUS: usize = 256;

/// STFLE bit of the extended-length SCCB facility.
pub const FACILITY_EXTENDED_SCCB: usize = 140;

/// Read CPU Info: the configured CPUs.
pub fn parse_cpu_info(sccb: &[u8]) -> u16 {
    get16(sccb, 8)
}

/// Read CPU Info's answer: the configured CPUs' addresses (the first byte
/// of each 16-byte entry) and how many are in standby.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuInfo {
    pub configured: alloc::vec::Vec<u16>,
    pub standby: u16,
}

/// Offsets in Read CPU Info's SCCB.
const CPU_INFO_CONFIGURED: usize = 8;
const CPU_INFO_OFFSET: usize = 10;
const CPU_INFO_STANDBY: usize = 12;
const CPU_ENTRY_LEN: usize = 16;

/// Decodes Read CPU Info's answer in `sccb` (the whole SCCB as the SCLP
/// left it); an entry list past the SCCB's own length is refused, not read.
pub fn parse_cpu_entries(sccb: &[u8]) -> Result<CpuInfo, &'static str> {
    if sccb.len() < 24 {
        return Err("SCCB shorter than the Read CPU Info header");
    }
    let len = usize::from(get16(sccb, 0)).min(sccb.len());
    let n = usize::from(get16(sccb, CPU_INFO_CONFIGURED));
    let at = usize::from(get16(sccb, CPU_INFO_OFFSET));
    if at < 16 || at + n * CPU_ENTRY_LEN > len {
        return Err("configured CPU entries past the SCCB's length");
    }
    Ok(CpuInfo {
        configured: (0..n)
            .map(|i| u16::from(sccb[at + i * CPU_ENTRY_LEN]))
            .collect(),
        standby: get16(sccb, CPU_INFO_STANDBY),
    })
}

/// Read SCP Info's CPU entries (count at 16, their offset at 18, 16 bytes
/// each, the address first): the list where Read CPU Info is not known.
pub fn parse_scp_cpu_entries(sccb: &[u8]) -> Result<CpuInfo, &'static str> {
    if sccb.len() < 20 {
        return Err("SCCB shorter than the Read SCP Info header");
    }
    let len = usize::from(get16(sccb, 0)).min(sccb.len());
    let n = usize::from(get16(sccb, 16));
    let at = usize::from(get16(sccb, 18));
    if at < 20 || at + n * CPU_ENTRY_LEN > len {
        return Err("Read SCP Info's CPU entries past the SCCB's length");
    }
    Ok(CpuInfo {
        configured: (0..n)
            .map(|i| u16::from(sccb[at + i * CPU_ENTRY_LEN]))
            .collect(),
        standby: 0,
    })
}

/// Response code of a command the SCLP does not know.
pub const RC_UNKNOWN_COMMAND: u16 = 0x01f0;

/// What an SCLP response code means (the codes SCLP implementations,
/// QEMU's among them, answer).
pub fn response_meaning(code: u16) -> &'static str {
    match code {
        0x0010 => "normal read completion",
        0x0020 => "normal completion",
        0x0100 => "the SCCB crosses a 4 KiB boundary",
        0x01f0 => "command not recognised",
        0x0300 => "the SCCB is too short for the answer",
        0x0340 => "contained equipment check",
        0x40f0 => "invalid function",
        0x60f0 => "no event buffers stored",
        0x70f0 => "invalid selection mask",
        0x72f0 => "inconsistent lengths",
        0x73f0 => "event buffer syntax error",
        0x74f0 => "invalid mask length",
        _ => "unknown response code",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScpInfo {
    /// Bytes of storage: increment size times increments.
    pub memory: u64,
    pub cpus: u16,
}

/// Decodes Read SCP Info: memory = rnsize MiB × rnmax, with the wide
/// fields used when the short ones are zero.
pub fn parse_read_info(sccb: &[u8]) -> Option<ScpInfo> {
    let rnmax = match get16(sccb, 8) {
        0 => get64(sccb, 104),
        n => u64::from(n),
    };
    let rnsize = match sccb[10] {
        0 => u64::from(get32(sccb, 100)),
        n => u64::from(n),
    };
    let memory = rnmax.checked_mul(rnsize)?.checked_mul(1 << 20)?;
    (memory != 0).then_some(ScpInfo {
        memory,
        cpus: get16(sccb, 16),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_event_layout() {
        let mut b = [0u8; SCCB_SIZE];
        let n = build_ascii_write(&mut b, b"ok 1\n");
        assert_eq!(n, 8 + 6 + 5);
        assert_eq!(get16(&b, 0), n as u16);
        assert_eq!(get16(&b, 8), 11);
        assert_eq!(b[10], 0x1a);
        assert_eq!(&b[14..19], b"ok 1\n");
    }

    #[test]
    fn line_event_layout() {
        let mut b = [0xffu8; SCCB_SIZE];
        let n = build_line_write(&mut b, b"Hi", crate::ebcdic::CodePage::Cp500);
        assert_eq!(n, 8 + 6 + 12 + 56 + 10 + 2);
        assert_eq!(get16(&b, 8) as usize, n - 8);
        assert_eq!(b[10], 0x02);
        assert_eq!(get16(&b, 14) as usize, n - 14);
        assert_eq!(get32(&b, 18), 0xd4c4c240);
        assert_eq!(get16(&b, 26), 56);
        assert_eq!(get16(&b, 82), 12);
        assert_eq!(get16(&b, 84), 4);
        assert_eq!(&b[92..94], &[0xc8, 0x89]);
    }

    #[test]
    fn long_text_is_cut_to_one_page() {
        let mut b = [0u8; SCCB_SIZE];
        let text = [b'x'; 5000];
        assert_eq!(
            build_line_write(&mut b, &text, crate::ebcdic::CodePage::Cp037),
            SCCB_SIZE
        );
        assert!(build_ascii_write(&mut b, &text) <= SCCB_SIZE);
    }

    #[test]
    fn masks() {
        assert_eq!(event_mask_bit(EVENT_ASCII, 4), 0x40);
        assert_eq!(event_mask_bit(EVENT_MESSAGE, 4), 0x4000_0000);
        let mut b = [0u8; SCCB_SIZE];
        assert_eq!(build_event_mask(&mut b), 28);
        assert_eq!(get32(&b, 16), 0x4000_0040);
    }

    #[test]
    fn read_info_sizes() {
        // QEMU's limit: 247 CPUs fit a page, 248 do not.
        assert_eq!(read_info_len(247), 4096);
        assert_eq!(read_info_len(248), 4112);
        assert!(read_info_len(MAX_CPUS) <= 2 * SCCB_SIZE);
        let mut b = [0xffu8; 64];
        assert_eq!(build_read_info(&mut b, 32), 32);
        assert_eq!(get16(&b, 0), 32);
        assert_eq!(response_code(&b), 0);
        assert_eq!(b[32], 0xff, "nothing past the request");
        assert_eq!(
            response_meaning(0x0300),
            "the SCCB is too short for the answer"
        );
        assert_eq!(response_meaning(0x1234), "unknown response code");
    }

    #[test]
    fn read_info() {
        let mut b = [0u8; SCCB_SIZE];
        b[8..10].copy_from_slice(&128u16.to_be_bytes());
        b[10] = 1;
        b[16..18].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(
            parse_read_info(&b),
            Some(ScpInfo {
                memory: 128 << 20,
                cpus: 2
            })
        );
        b[8..10].fill(0);
        b[10] = 0;
        b[100..104].copy_from_slice(&256u32.to_be_bytes());
        b[104..112].copy_from_slice(&16u64.to_be_bytes());
        assert_eq!(parse_read_info(&b).unwrap().memory, 4 << 30);
        b[104..112].fill(0);
        assert_eq!(parse_read_info(&b), None);
    }
}

#[cfg(test)]
mod cpu_info_tests {
    use super::*;

    fn answer(addresses: &[u8], offset: u16, len: u16) -> Vec<u8> {
        let mut s = vec![0u8; 4096];
        s[0..2].copy_from_slice(&len.to_be_bytes());
        s[8..10].copy_from_slice(&(addresses.len() as u16).to_be_bytes());
        s[10..12].copy_from_slice(&offset.to_be_bytes());
        for (i, &a) in addresses.iter().enumerate() {
            s[usize::from(offset) + 16 * i] = a;
        }
        s
    }

    #[test]
    fn reads_each_entry_address() {
        let s = answer(&[0, 1, 5, 7], 24, 4096);
        let info = parse_cpu_entries(&s).unwrap();
        assert_eq!(info.configured, vec![0, 1, 5, 7]);
        assert_eq!(info.standby, 0);
    }

    #[test]
    fn read_scp_info_lists_cpus_too() {
        let mut s = vec![0u8; 4096];
        s[0..2].copy_from_slice(&4096u16.to_be_bytes());
        s[16..18].copy_from_slice(&3u16.to_be_bytes());
        s[18..20].copy_from_slice(&128u16.to_be_bytes());
        for (i, a) in [0u8, 2, 4].iter().enumerate() {
            s[128 + 16 * i] = *a;
        }
        assert_eq!(parse_scp_cpu_entries(&s).unwrap().configured, vec![0, 2, 4]);
        s[18..20].copy_from_slice(&4090u16.to_be_bytes());
        assert!(parse_scp_cpu_entries(&s).is_err());
    }

    #[test]
    fn refuses_entries_past_the_length() {
        // Four entries from 24 need 88 bytes.
        let s = answer(&[0, 1, 2, 3], 24, 87);
        assert!(parse_cpu_entries(&s).is_err());
        assert!(parse_cpu_entries(&answer(&[0], 4090, 4096)).is_err());
        assert!(parse_cpu_entries(&answer(&[0], 8, 4096)).is_err());
        assert!(parse_cpu_entries(&s[..20]).is_err());
    }
}

#[cfg(test)]
mod event_tests {
    use super::*;

    #[test]
    fn the_config_event_is_received_only_when_asked() {
        let mut b = [0u8; 64];
        build_event_mask_receiving(&mut b, true);
        assert_eq!(
            get32(&b, 12),
            0x1000_0000,
            "type 4 is bit 3 of the receive mask"
        );
        assert_eq!(get32(&b, 16), 0x4000_0040);
        build_event_mask(&mut b);
        assert_eq!(get32(&b, 12), 0);
    }

    #[test]
    fn event_buffers_are_walked_within_the_length() {
        let mut b = [0u8; 64];
        // Header (len 24), then an 8-byte config event (qualifier 1) and an
        // 8-byte event of type 0x1a.
        b[0..2].copy_from_slice(&24u16.to_be_bytes());
        b[8..10].copy_from_slice(&8u16.to_be_bytes());
        b[10] = EVENT_CONFIG_MGT;
        b[15] = CONFIG_QUALIFIER_CPU;
        b[16..18].copy_from_slice(&8u16.to_be_bytes());
        b[18] = 0x1a;
        let e = events(&b).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0], (EVENT_CONFIG_MGT, &[0u8, CONFIG_QUALIFIER_CPU][..]));
        assert_eq!(e[1].0, 0x1a);
        b[16..18].copy_from_slice(&9u16.to_be_bytes());
        assert!(events(&b).is_err());
        b[16..18].copy_from_slice(&3u16.to_be_bytes());
        assert!(events(&b).is_err());
        b[16..18].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(
            events(&b).unwrap().len(),
            1,
            "an empty buffer ends the list"
        );
    }
}
