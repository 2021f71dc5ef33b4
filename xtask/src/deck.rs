//! An 80-byte-card IPL deck from the flat image, for a card reader IPL
//! (z/VM: `PUNCH zvtest.deck (NOH)`, `IPL 00C CLEAR`; Hercules: a 3505
//! reader on the deck file).
//!
//! An IPL from a card reader reads the first card's first 24 bytes to
//! absolute 0 and command-chains to the CCW at 8; when the channel program
//! ends, the CPU loads the PSW at 0. The deck:
//!
//! | card | holds | read to |
//! |---|---|---|
//! | 1 | IPL PSW; CCW at 8: READ card 2 to `list`; CCW at 16: TIC to `list` | 0 (24 bytes: the CCWs stay at 8–23) |
//! | 2 ..= m+1 | the CCW list, 10 CCWs a card | `list`, `list` + 80, ... |
//! | m+2 ... | the image from 0x10000 on, 80 bytes a card | 0x10000, 0x10050, ... |
//!
//! The CCW list is one contiguous channel program that grows as it runs:
//! its first m−1 CCWs read the other m−1 list cards right behind card 2,
//! always well before the channel reaches them (CCW k−1 reads list card k,
//! which holds CCWs 10k..10k+9); then one READ a data card, the last one
//! counting only the bytes left and without chaining. The list sits above
//! the image (it is dead once the PSW is loaded: that is bss and heap to the
//! firmware) and below 16 MiB, as format-0 CCWs address 24 bits.

/// Bytes on a card.
pub const CARD: usize = 80;
/// Where the image's data starts; below it only the IPL PSW is loaded.
pub const LOAD_ADDR: usize = 0x10000;
/// Format-0 CCWs address 24 bits.
const ADDR_LIMIT: usize = 1 << 24;
/// The CCW list starts one page above the page where the image ends.
const LIST_GAP: usize = 0x1000;
const CCWS_PER_CARD: usize = CARD / 8;

/// Format-0 CCW command codes and flags.
pub const CMD_READ: u8 = 0x02;
pub const CMD_TIC: u8 = 0x08;
pub const FLAG_CC: u8 = 0x40;
pub const FLAG_SLI: u8 = 0x20;

/// An IPL deck and where it puts things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deck {
    /// Whole cards, 80 bytes each.
    pub bytes: Vec<u8>,
    /// Where the CCW list is read to (8-byte aligned, below 16 MiB).
    pub list_addr: usize,
    /// Cards that hold the CCW list.
    pub list_cards: usize,
    /// Cards that hold the image from [`LOAD_ADDR`] on.
    pub data_cards: usize,
}

impl Deck {
    pub fn cards(&self) -> usize {
        self.bytes.len() / CARD
    }
}

/// A format-0 CCW.
pub fn ccw0(cmd: u8, addr: usize, flags: u8, count: u16) -> [u8; 8] {
    assert!(addr < ADDR_LIMIT, "CCW address {addr:#x} beyond 24 bits");
    let a = (addr as u32).to_be_bytes();
    let c = count.to_be_bytes();
    [cmd, a[1], a[2], a[3], flags, 0, c[0], c[1]]
}

/// The deck that loads `image` (bytes from address 0: an IPL PSW, zeros up
/// to [`LOAD_ADDR`], then the firmware) and starts it through its PSW.
pub fn ipl_deck(image: &[u8]) -> Result<Deck, String> {
    if image.len() <= LOAD_ADDR {
        return Err(format!(
            "image is {:#x} bytes: nothing to load from {LOAD_ADDR:#x} on",
            image.len()
        ));
    }
    if let Some(at) = image[8..LOAD_ADDR].iter().position(|&b| b != 0) {
        return Err(format!(
            "image has data at {:#x} in the lowcore; the deck loads only the IPL PSW below {LOAD_ADDR:#x}",
            at + 8
        ));
    }
    let psw: [u8; 8] = image[..8].try_into().expect("8 bytes");
    // ESA/390 short PSW: bit 12 must be one; the address is bits 33-63.
    if psw[1] & 0x08 == 0 {
        return Err(format!(
            "IPL PSW {psw:02x?} is not an ESA/390 PSW (bit 12 off)"
        ));
    }
    let entry = u32::from_be_bytes(psw[4..].try_into().expect("4 bytes")) as usize & 0x7fff_ffff;
    if !(LOAD_ADDR..image.len()).contains(&entry) {
        return Err(format!(
            "IPL PSW address {entry:#x} is outside the loaded image {LOAD_ADDR:#x}..{:#x}",
            image.len()
        ));
    }

    let data = &image[LOAD_ADDR..];
    let data_cards = data.len().div_ceil(CARD);
    // m list cards hold 10m CCWs: m−1 READs of the other list cards, then one
    // READ per data card; the smallest m with 10m ≥ m−1+d.
    let list_cards = data_cards
        .saturating_sub(1)
        .div_ceil(CCWS_PER_CARD - 1)
        .max(1);
    let list_addr = image.len().next_multiple_of(LIST_GAP) + LIST_GAP;
    let list_end = list_addr + list_cards * CARD;
    if list_end > ADDR_LIMIT {
        return Err(format!(
            "image of {:#x} bytes needs a CCW list up to {list_end:#x}, beyond 24-bit addresses",
            image.len()
        ));
    }

    let mut list = Vec::with_capacity(list_cards * CARD);
    for k in 1..list_cards {
        list.extend(ccw0(
            CMD_READ,
            list_addr + k * CARD,
            FLAG_CC | FLAG_SLI,
            CARD as u16,
        ));
    }
    for (j, chunk) in data.chunks(CARD).enumerate() {
        let last = j + 1 == data_cards;
        let flags = if last { FLAG_SLI } else { FLAG_CC | FLAG_SLI };
        list.extend(ccw0(
            CMD_READ,
            LOAD_ADDR + j * CARD,
            flags,
            chunk.len() as u16,
        ));
    }
    list.resize(list_cards * CARD, 0);

    let mut bytes = Vec::with_capacity((1 + list_cards + data_cards) * CARD);
    bytes.extend(psw);
    bytes.extend(ccw0(CMD_READ, list_addr, FLAG_CC | FLAG_SLI, CARD as u16));
    bytes.extend(ccw0(CMD_TIC, list_addr, 0, 0));
    bytes.resize(CARD, 0);
    bytes.extend(&list);
    for chunk in data.chunks(CARD) {
        bytes.extend(chunk);
        bytes.resize(bytes.len().next_multiple_of(CARD), 0);
    }
    Ok(Deck {
        bytes,
        list_addr,
        list_cards,
        data_cards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory after a simulated card-reader IPL, and the ranges written.
    struct Ipl {
        mem: Vec<u8>,
        written: Vec<std::ops::Range<usize>>,
        psw: [u8; 8],
    }

    /// A card reader IPL as the channel runs it: the implied READ of 24
    /// bytes to 0 chained to the CCW at 8, then format-0 READ, TIC and
    /// command chaining, one card per READ; every card must be read.
    fn simulate(deck: &[u8]) -> Result<Ipl, String> {
        if deck.is_empty() || !deck.len().is_multiple_of(CARD) {
            return Err(format!("deck of {} bytes is not whole cards", deck.len()));
        }
        let mut ipl = Ipl {
            mem: vec![0u8; ADDR_LIMIT],
            written: Vec::new(),
            psw: [0; 8],
        };
        let mut cards = deck.chunks(CARD);
        let mut read = |ipl: &mut Ipl, addr: usize, count: usize, flags: u8| {
            let card = cards.next().ok_or("READ past the last card")?;
            if count != CARD && flags & FLAG_SLI == 0 {
                return Err(format!("incorrect length {count} without SLI"));
            }
            let n = count.min(CARD);
            if addr + n > ADDR_LIMIT {
                return Err(format!("READ to {addr:#x} beyond 24 bits"));
            }
            ipl.mem[addr..addr + n].copy_from_slice(&card[..n]);
            ipl.written.push(addr..addr + n);
            Ok::<_, String>(())
        };
        read(&mut ipl, 0, 24, FLAG_CC | FLAG_SLI)?;
        let mut at = 8usize;
        let mut after_tic = false;
        for _ in 0..1_000_000 {
            if !at.is_multiple_of(8) || at + 8 > ADDR_LIMIT {
                return Err(format!("CCW address {at:#x} invalid"));
            }
            let c = &ipl.mem[at..at + 8];
            let addr = u32::from_be_bytes([0, c[1], c[2], c[3]]) as usize;
            let (cmd, flags) = (c[0], c[4]);
            let count = u16::from_be_bytes([c[6], c[7]]) as usize;
            if cmd & 0x0f == CMD_TIC {
                if after_tic {
                    return Err(format!("TIC to TIC at {at:#x}"));
                }
                after_tic = true;
                at = addr;
                continue;
            }
            after_tic = false;
            if cmd != CMD_READ {
                return Err(format!("command {cmd:#04x} at {at:#x}"));
            }
            if flags & !(FLAG_CC | FLAG_SLI) != 0 || count == 0 {
                return Err(format!("flags {flags:#04x} count {count} at {at:#x}"));
            }
            read(&mut ipl, addr, count, flags)?;
            if flags & FLAG_CC == 0 {
                // Reading once more must find the deck exhausted.
                if read(&mut ipl, 0, 0, FLAG_SLI).is_ok() {
                    return Err("channel program ended before the last card".into());
                }
                ipl.psw = ipl.mem[..8].try_into().expect("8 bytes");
                return Ok(ipl);
            }
            at += 8;
        }
        Err("channel program does not end".into())
    }

    /// A plausible image: the IPL PSW to 0x10000, zeros, then `len` bytes of
    /// a pattern that shows misplaced cards.
    fn image(len: usize) -> Vec<u8> {
        let mut img = vec![0u8; LOAD_ADDR + len];
        img[..8].copy_from_slice(&[0x00, 0x08, 0, 0, 0x80, 0x01, 0x00, 0x00]);
        for (i, b) in img[LOAD_ADDR..].iter_mut().enumerate() {
            *b = (i % 251) as u8 ^ (i / 251) as u8 | 1;
        }
        img
    }

    fn check_ipl(img: &[u8]) -> Deck {
        let deck = ipl_deck(img).unwrap();
        assert_eq!(deck.bytes.len() % CARD, 0);
        assert_eq!(deck.cards(), 1 + deck.list_cards + deck.data_cards);
        let ipl = simulate(&deck.bytes).unwrap_or_else(|e| panic!("{} bytes: {e}", img.len()));
        assert_eq!(ipl.psw, img[..8]);
        assert!(
            ipl.mem[LOAD_ADDR..img.len()] == img[LOAD_ADDR..],
            "{} bytes: image differs after IPL",
            img.len()
        );
        // Written: the 24-byte IPL record, the image, the CCW list; nothing else.
        let list = deck.list_addr..deck.list_addr + deck.list_cards * CARD;
        for w in &ipl.written {
            let within = |r: &std::ops::Range<usize>| r.start <= w.start && w.end <= r.end;
            let allowed = [0..24, LOAD_ADDR..img.len(), list.clone()];
            assert!(
                allowed.iter().any(within),
                "{} bytes: wrote {w:x?}",
                img.len()
            );
        }
        assert!(deck.list_addr.is_multiple_of(8) && deck.list_addr >= img.len());
        deck
    }

    #[test]
    fn ipl_loads_the_image_for_every_shape() {
        // One card, a partial card, exact multiples, and around the points
        // where the list needs one more card (1 + 9k data cards).
        for len in [
            1, 79, 80, 81, 160, 720, 800, 801, 880, 1519, 1520, 1521, 1600, 1601, 8000,
        ] {
            check_ipl(&image(len));
        }
    }

    #[test]
    fn list_size_is_minimal_and_sufficient() {
        for data_cards in 1..200 {
            let d = check_ipl(&image(data_cards * CARD));
            assert_eq!(d.data_cards, data_cards);
            let ccws = d.list_cards - 1 + data_cards;
            assert!(ccws <= d.list_cards * CCWS_PER_CARD, "{data_cards}");
            assert!(ccws > (d.list_cards - 1) * CCWS_PER_CARD || d.list_cards == 1);
        }
    }

    #[test]
    fn firmware_sized_image() {
        // About the size of target/zvtest.img.
        let d = check_ipl(&image(300 << 10));
        assert_eq!(d.data_cards, (300usize << 10).div_ceil(CARD));
        assert!(d.list_addr + d.list_cards * CARD < ADDR_LIMIT);
    }

    #[test]
    fn card_one_is_psw_read_and_tic() {
        let img = image(1000);
        let d = ipl_deck(&img).unwrap();
        let b = &d.bytes;
        assert_eq!(b[..8], img[..8]);
        let a = (d.list_addr as u32).to_be_bytes();
        assert_eq!(b[8..16], [0x02, a[1], a[2], a[3], 0x60, 0, 0, 80]);
        assert_eq!(b[16..24], [0x08, a[1], a[2], a[3], 0, 0, 0, 0]);
        assert!(b[24..80].iter().all(|&x| x == 0));
        // The last data CCW reads the 40 bytes left and ends the program.
        let last = 13 - 1;
        let ccw = &b[CARD + 8 * (d.list_cards - 1 + last)..][..8];
        let at = ((LOAD_ADDR + last * 80) as u32).to_be_bytes();
        assert_eq!(ccw, [0x02, at[1], at[2], at[3], 0x20, 0, 0, 40]);
    }

    #[test]
    fn rejects_what_it_cannot_load() {
        assert!(ipl_deck(&[0; 8]).unwrap_err().contains("nothing to load"));
        let mut low = image(10);
        low[0x200] = 1;
        assert!(ipl_deck(&low)
            .unwrap_err()
            .contains("at 0x200 in the lowcore"));
        let mut z = image(10);
        z[1] = 0;
        assert!(ipl_deck(&z).unwrap_err().contains("not an ESA/390"));
        let mut far = image(10);
        far[4..8].copy_from_slice(&0x8002_0000u32.to_be_bytes());
        assert!(ipl_deck(&far)
            .unwrap_err()
            .contains("outside the loaded image"));
        let huge = image(15 << 20);
        assert!(ipl_deck(&huge).unwrap_err().contains("beyond 24-bit"));
    }

    #[test]
    fn simulator_catches_broken_decks() {
        let d = ipl_deck(&image(800)).unwrap();
        // A card short: the chain reads past the end.
        let short = &d.bytes[..d.bytes.len() - CARD];
        assert!(simulate(short)
            .err()
            .unwrap()
            .contains("past the last card"));
        // A card too many is left unread.
        let mut long = d.bytes.clone();
        long.extend([0; CARD]);
        assert!(simulate(&long)
            .err()
            .unwrap()
            .contains("before the last card"));
        // A data card out of place shows in memory.
        let mut swapped = d.bytes.clone();
        let n = swapped.len();
        swapped.copy_within(n - 2 * CARD..n - CARD, n - 3 * CARD);
        let ipl = simulate(&swapped).unwrap();
        assert!(ipl.mem[LOAD_ADDR..LOAD_ADDR + 800] != image(800)[LOAD_ADDR..]);
    }
}
