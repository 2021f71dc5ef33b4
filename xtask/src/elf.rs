//! Raw flat image from the firmware ELF: what QEMU loads at address 0 when
//! `-kernel` is not an ELF, and what a reader-deck IPL needs.

use object::elf::{FileHeader64, Ident, ELFMAG, EM_S390, ET_EXEC, EV_CURRENT, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{BigEndian, FileKind, ReadRef};

/// No firmware image comes near this; a corrupt header must not make us
/// allocate gigabytes.
const MAX_IMAGE: u64 = 256 << 20;

/// One PT_LOAD segment: where it goes and its bytes in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub paddr: u64,
    pub data: &'a [u8],
}

/// The PT_LOAD segments of a big-endian ELF64 s390x executable.
pub fn load_segments(elf: &[u8]) -> Result<Vec<Segment<'_>>, String> {
    let truncated = || "ELF file is truncated".to_string();
    match FileKind::parse(elf) {
        Ok(FileKind::Elf64) => {}
        Ok(FileKind::Elf32) => return Err("not a 64-bit ELF".into()),
        _ if !elf.starts_with(&ELFMAG) => return Err("not an ELF file".into()),
        // The magic but no whole identification, or a class of neither size.
        _ if elf.len() < size_of::<Ident>() => return Err(truncated()),
        _ => return Err("not a 64-bit ELF".into()),
    }
    // Read without object's support check first, to say which part is wrong.
    let header: &FileHeader64<BigEndian> = elf.read_at(0).map_err(|()| truncated())?;
    if !header.is_big_endian() {
        return Err("not a big-endian ELF".into());
    }
    if !header.is_supported() {
        return Err(format!(
            "ELF version {}, expected {}",
            header.e_ident().version,
            EV_CURRENT
        ));
    }
    let endian = BigEndian;
    let machine = header.e_machine(endian);
    if machine != EM_S390 {
        return Err(format!(
            "ELF machine {}, expected s390 ({})",
            machine.0, EM_S390.0
        ));
    }
    let kind = header.e_type(endian);
    if kind != ET_EXEC {
        return Err(format!(
            "ELF type {}, expected an executable ({})",
            kind.0, ET_EXEC.0
        ));
    }
    // object takes only the ELF64 size (as every linker writes it); say so
    // rather than give its generic error.
    let phentsize = header.e_phentsize(endian);
    let expected = size_of::<<FileHeader64<BigEndian> as FileHeader>::ProgramHeader>();
    if usize::from(phentsize) != expected && header.e_phnum(endian) > 0 {
        return Err(format!(
            "program header size {phentsize}, expected {expected}"
        ));
    }
    let headers = header
        .program_headers(endian, elf)
        .map_err(|_| truncated())?;
    let mut segments = Vec::new();
    for (i, ph) in headers.iter().enumerate() {
        if ph.p_type(endian) != PT_LOAD {
            continue;
        }
        // object finds an empty segment anywhere; a bss-only segment's
        // offset must still be within the file, as before.
        let (offset, size) = ph.file_range(endian);
        let outside = || format!("segment {i} lies outside the file");
        if offset
            .checked_add(size)
            .is_none_or(|end| end > elf.len() as u64)
        {
            return Err(outside());
        }
        let data = ph.data(endian, elf).map_err(|()| outside())?;
        segments.push(Segment {
            paddr: ph.p_paddr(endian),
            data,
        });
    }
    Ok(segments)
}

/// Bytes from physical address 0 to the end of the last segment's file data,
/// each PT_LOAD segment's file bytes at its physical address, gaps zero.
/// Memory-only parts (bss) are left out: the firmware clears them itself.
pub fn flat_image(elf: &[u8]) -> Result<Vec<u8>, String> {
    let mut segments = load_segments(elf)?;
    segments.retain(|s| !s.data.is_empty());
    if segments.is_empty() {
        return Err("ELF has no loadable data".into());
    }
    segments.sort_by_key(|s| s.paddr);
    let mut end = 0u64;
    for s in &segments {
        if s.paddr < end {
            return Err(format!(
                "segment at {:#x} overlaps the one before (ending at {end:#x})",
                s.paddr
            ));
        }
        end = s
            .paddr
            .checked_add(s.data.len() as u64)
            .filter(|&e| e <= MAX_IMAGE)
            .ok_or_else(|| format!("segment at {:#x} ends beyond {MAX_IMAGE:#x}", s.paddr))?;
    }
    let mut image = vec![0u8; end as usize];
    for s in &segments {
        let at = s.paddr as usize;
        image[at..at + s.data.len()].copy_from_slice(s.data);
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOAD: u32 = PT_LOAD.0;

    /// (p_type, offset, paddr, filesz, data written at offset)
    type Seg<'a> = (u32, u64, u64, u64, &'a [u8]);

    /// A minimal ELF64 big-endian s390x executable with these program headers.
    fn elf(segments: &[Seg]) -> Vec<u8> {
        let phoff = 64u64;
        let mut b = vec![0u8; 0x1000];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // ELFCLASS64
        b[5] = 2; // ELFDATA2MSB
        b[6] = 1;
        b[0x10..0x12].copy_from_slice(&ET_EXEC.0.to_be_bytes());
        b[0x12..0x14].copy_from_slice(&EM_S390.0.to_be_bytes());
        b[0x20..0x28].copy_from_slice(&phoff.to_be_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_be_bytes());
        b[0x38..0x3a].copy_from_slice(&(segments.len() as u16).to_be_bytes());
        for (i, &(kind, offset, paddr, filesz, data)) in segments.iter().enumerate() {
            let at = phoff as usize + i * 56;
            b[at..at + 4].copy_from_slice(&kind.to_be_bytes());
            b[at + 8..at + 16].copy_from_slice(&offset.to_be_bytes());
            // vaddr deliberately differs: the image follows the physical address.
            b[at + 16..at + 24].copy_from_slice(&paddr.wrapping_add(0x1000_0000).to_be_bytes());
            b[at + 24..at + 32].copy_from_slice(&paddr.to_be_bytes());
            b[at + 32..at + 40].copy_from_slice(&filesz.to_be_bytes());
            b[at + 40..at + 48].copy_from_slice(&(filesz + 0x100).to_be_bytes());
            let o = offset as usize;
            if o + data.len() > b.len() {
                b.resize(o + data.len(), 0);
            }
            b[o..o + data.len()].copy_from_slice(data);
        }
        b
    }

    #[test]
    fn segments_land_at_physical_addresses_with_zero_gaps() {
        let psw = [0, 8, 0, 0, 0x80, 1, 0, 0];
        let e = elf(&[
            (LOAD, 0x400, 0, 8, &psw),
            (6, 0x40, 0x9999, 0x38, &[]), // PT_PHDR: ignored
            (LOAD, 0x800, 0x20, 4, b"CODE"),
            (LOAD, 0x900, 0x100, 0, &[]), // bss only
        ]);
        let img = flat_image(&e).unwrap();
        assert_eq!(img.len(), 0x24);
        assert_eq!(img[..8], psw);
        assert!(img[8..0x20].iter().all(|&b| b == 0));
        assert_eq!(&img[0x20..], b"CODE");
    }

    #[test]
    fn order_of_headers_does_not_matter() {
        let a = elf(&[(LOAD, 0x800, 0x10, 2, b"hi"), (LOAD, 0x400, 0, 2, b"lo")]);
        let img = flat_image(&a).unwrap();
        assert_eq!(&img[..2], b"lo");
        assert_eq!(&img[0x10..], b"hi");
    }

    #[test]
    fn first_segment_above_zero_is_padded_from_zero() {
        let img = flat_image(&elf(&[(LOAD, 0x400, 0x10000, 2, b"go")])).unwrap();
        assert_eq!(img.len(), 0x10002);
        assert_eq!(&img[0x10000..], b"go");
    }

    #[test]
    fn rejects_what_is_not_an_s390x_executable() {
        let good = elf(&[(LOAD, 0x400, 0, 2, b"ok")]);
        let broken = |i: usize, v: u8| {
            let mut e = good.clone();
            e[i] = v;
            flat_image(&e).unwrap_err()
        };
        assert_eq!(broken(0, 0), "not an ELF file");
        assert_eq!(broken(4, 1), "not a 64-bit ELF");
        assert_eq!(broken(5, 1), "not a big-endian ELF");
        assert!(broken(0x13, 62).contains("machine 62"));
        assert!(broken(0x11, 3).contains("type 3"));
        assert_eq!(broken(0x37, 8), "program header size 8, expected 56");
        assert_eq!(
            flat_image(&good[..0x30]).unwrap_err(),
            "ELF file is truncated"
        );
        assert_eq!(flat_image(b"").unwrap_err(), "not an ELF file");
        assert_eq!(broken(4, 0), "not a 64-bit ELF");
        assert_eq!(broken(5, 0), "not a big-endian ELF");
        assert_eq!(broken(6, 2), "ELF version 2, expected 1");
        assert_eq!(flat_image(&good[..5]).unwrap_err(), "ELF file is truncated");
    }

    #[test]
    fn rejects_bad_segments() {
        let outside = elf(&[(LOAD, 0xfff, 0, 2, &[])]);
        assert!(flat_image(&outside)
            .unwrap_err()
            .contains("outside the file"));
        // Even a segment with no file bytes must start within the file.
        let mut empty_outside = elf(&[(LOAD, 0x400, 0, 2, b"ok"), (LOAD, 0x1800, 8, 0, &[])]);
        empty_outside.truncate(0x1000);
        assert_eq!(
            flat_image(&empty_outside).unwrap_err(),
            "segment 1 lies outside the file"
        );
        let overlap = elf(&[(LOAD, 0x400, 0, 8, &[]), (LOAD, 0x400, 4, 8, &[])]);
        assert!(flat_image(&overlap).unwrap_err().contains("overlaps"));
        let huge = elf(&[(LOAD, 0x400, 1 << 40, 2, b"xx")]);
        assert!(flat_image(&huge).unwrap_err().contains("beyond"));
        let wrap = elf(&[(LOAD, 0x400, u64::MAX, 2, b"xx")]);
        assert!(flat_image(&wrap).unwrap_err().contains("beyond"));
        let none = elf(&[(LOAD, 0x400, 0, 0, &[])]);
        assert_eq!(flat_image(&none).unwrap_err(), "ELF has no loadable data");
        let mut many = elf(&[]);
        many[0x38..0x3a].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(flat_image(&many).unwrap_err(), "ELF file is truncated");
    }

    #[test]
    fn headers_are_read() {
        let e = elf(&[(LOAD, 0x400, 0x20, 3, b"abc")]);
        assert_eq!(
            load_segments(&e).unwrap(),
            [Segment {
                paddr: 0x20,
                data: b"abc"
            }]
        );
    }
}
