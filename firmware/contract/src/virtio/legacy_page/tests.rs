use super::*;
use alloc::vec;

fn net() -> LegacyDeviceSpec {
    LegacyDeviceSpec::new(1)
        .with_queue(0x11, 0x10_0000, 256)
        .with_queue(0x12, 0x10_4000, 256)
        .with_host_features(&[0x21, 0x00, 0x01, 0x80])
        .with_config(&[0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
}

fn blk() -> LegacyDeviceSpec {
    LegacyDeviceSpec::new(2)
        .with_status(0x07)
        .with_queue(0xdead_beef_0000_0001, 0x20_0000, 128)
        .with_host_features(&[0x44])
        .with_guest_features(&[0x04])
        .with_config(&[0, 0, 0, 0, 0, 0, 0x10, 0])
}

fn console() -> LegacyDeviceSpec {
    LegacyDeviceSpec::new(3)
        .with_queue(1, 0x30_0000, 64)
        .with_queue(2, 0x30_2000, 64)
}

fn build(specs: &[LegacyDeviceSpec]) -> Vec<u8> {
    let mut b = LegacyPageBuilder::default();
    for s in specs {
        b.push(s.clone());
    }
    b.build().unwrap()
}

/// The spec a parsed device would be built from.
fn spec_of(d: &LegacyDevice) -> LegacyDeviceSpec {
    LegacyDeviceSpec {
        device_type: d.device_type,
        status: d.status,
        queues: d
            .queues
            .iter()
            .map(|q| QueueSpec {
                token: q.token,
                address: q.address,
                num: q.num,
            })
            .collect(),
        host_features: d.host_features.clone(),
        guest_features: d.guest_features.clone(),
        config: d.config.clone(),
    }
}

/// Everything a successful parse promises about the devices it returns.
fn check_devices(page: &[u8], devs: &[LegacyDevice]) {
    let mut expect_offset = 0;
    for (i, d) in devs.iter().enumerate() {
        assert_eq!(d.index, i);
        assert_eq!(d.offset, expect_offset);
        assert!(d.end() <= page.len(), "device {i} ends past the page");
        assert!(d.len() >= MIN_DESC_LEN);
        assert!(!d.is_empty());
        let head = page.get(d.offset..d.offset + HEADER_LEN).unwrap();
        assert_eq!(head[0], d.device_type);
        assert_ne!(d.device_type, 0);
        assert_eq!(usize::from(head[1]), d.queues.len());
        assert_eq!(usize::from(head[2]), d.feature_len());
        assert_eq!(usize::from(head[3]), d.config.len());
        assert_eq!(page[d.status_offset()], d.status);
        assert_eq!(d.guest_features.len(), d.feature_len());
        assert_eq!(
            page.get(d.host_features_range()).unwrap(),
            &d.host_features[..]
        );
        assert_eq!(
            page.get(d.guest_features_range()).unwrap(),
            &d.guest_features[..]
        );
        assert_eq!(page.get(d.config_range()).unwrap(), &d.config[..]);
        assert_eq!(d.range(), d.offset..d.end());
        for (k, q) in d.queues.iter().enumerate() {
            assert_eq!(q.offset, d.queues_offset() + k * QUEUE_DESC_LEN);
            assert_eq!(q.token_offset(), q.offset);
            let b = page.get(q.offset..q.offset + QUEUE_DESC_LEN).unwrap();
            assert_eq!(u64::from_be_bytes(b[0..8].try_into().unwrap()), q.token);
            assert_eq!(u64::from_be_bytes(b[8..16].try_into().unwrap()), q.address);
            assert_eq!(u16::from_be_bytes([b[16], b[17]]), q.num);
            assert!(q.num.is_power_of_two() && q.num <= MAX_QUEUE_NUM);
        }
        expect_offset = d.end();
    }
    assert_eq!(page.get(expect_offset), Some(&0), "terminator");
}

#[test]
fn only_a_terminator() {
    assert_eq!(parse(&[0u8; PAGE_SIZE]), Ok(vec![]));
    assert_eq!(parse(&[0u8]), Ok(vec![]));
    // Bytes after the terminator are never looked at.
    assert_eq!(parse(&[0, 0xff, 0xff, 0xff, 0xff, 0xff]), Ok(vec![]));
    assert_eq!(
        LegacyPageBuilder::default().build().unwrap(),
        vec![0; PAGE_SIZE]
    );
}

#[test]
fn empty_slice_has_no_terminator() {
    assert_eq!(
        parse(&[]),
        Err(LegacyPageError::NoTerminator {
            devices: 0,
            offset: 0,
            page_len: 0
        })
    );
}

/// A page written byte by byte, independently of the builder.
#[test]
fn one_device_by_hand() {
    let mut page = vec![0u8; 64];
    let bytes: &[u8] = &[
        3, 1, 2, 3, 0x07, // console, 1 queue, 2 feature bytes, 3 config bytes, status
        1, 2, 3, 4, 5, 6, 7, 8, // token (at the unaligned offset 5)
        0, 0, 0, 0, 0, 0xab, 0xc0, 0, // ring address
        0x01, 0x00, // 256 entries
        0, 0, 0, 0, 0, 0, // padding
        0x05, 0x80, // host features: bits 0, 2 and 15
        0x00, 0x01, // guest features: bit 8
        0xaa, 0xbb, 0xcc, // config
    ];
    page[..bytes.len()].copy_from_slice(bytes);
    let devs = parse(&page).unwrap();
    assert_eq!(devs.len(), 1);
    let d = &devs[0];
    assert_eq!((d.index, d.offset, d.device_type, d.status), (0, 0, 3, 7));
    assert_eq!(
        d.queues,
        vec![LegacyQueue {
            offset: 5,
            token: 0x0102_0304_0506_0708,
            address: 0xab_c000,
            num: 256
        }]
    );
    assert_eq!(d.status_offset(), 4);
    assert_eq!(d.queues_offset(), 5);
    assert_eq!(d.host_features_offset(), 29);
    assert_eq!(d.guest_features_offset(), 31);
    assert_eq!(d.config_offset(), 33);
    assert_eq!(d.end(), 36);
    assert_eq!(d.len(), 36);
    assert_eq!(d.host_features_range(), 29..31);
    assert_eq!(d.guest_features_range(), 31..33);
    assert_eq!(d.config_range(), 33..36);
    assert_eq!(d.host_features, [0x05, 0x80]);
    assert_eq!(d.guest_features, [0x00, 0x01]);
    assert_eq!(d.config, [0xaa, 0xbb, 0xcc]);
    for (bit, on) in [
        (0, true),
        (1, false),
        (2, true),
        (7, false),
        (15, true),
        (16, false),
    ] {
        assert_eq!(d.has_host_feature(bit), on, "bit {bit}");
    }
    assert!(!d.has_host_feature(u32::MAX));
    check_devices(&page, &devs);

    // The builder lays out the same bytes.
    let built = LegacyPageBuilder::new(64)
        .device(
            LegacyDeviceSpec::new(3)
                .with_status(7)
                .with_queue(0x0102_0304_0506_0708, 0xab_c000, 256)
                .with_host_features(&[0x05, 0x80])
                .with_guest_features(&[0x00, 0x01])
                .with_config(&[0xaa, 0xbb, 0xcc]),
        )
        .build()
        .unwrap();
    assert_eq!(built, page);
}

#[test]
fn several_devices() {
    let specs = [
        net(),
        blk(),
        console(),
        LegacyDeviceSpec::new(4).with_queue(0, 0, 1),
    ];
    let page = build(&specs);
    assert_eq!(page.len(), PAGE_SIZE);
    let devs = parse(&page).unwrap();
    check_devices(&page, &devs);
    let types: Vec<u8> = devs.iter().map(|d| d.device_type).collect();
    assert_eq!(types, [1, 2, 3, 4]);
    // net: 5 + 2 * 24 + 2 * 4 + 6 = 67 bytes.
    assert_eq!(devs[0].len(), 67);
    assert_eq!(devs[1].offset, 67);
    assert_eq!(devs[1].status_offset(), 71);
    assert_eq!(devs[1].guest_features, [0x04]);
    assert!(devs[0].has_host_feature(0) && devs[0].has_host_feature(5));
    assert!(devs[0].has_host_feature(16) && devs[0].has_host_feature(31));
    assert!(!devs[0].has_host_feature(32));
    assert_eq!(devs[2].feature_len(), 0);
    assert!(devs[2].config.is_empty());
    assert_eq!(devs[2].config_range(), devs[2].end()..devs[2].end());
}

#[test]
fn builder_round_trip() {
    let big = LegacyDeviceSpec::new(26)
        .with_status(0xff)
        .with_queue(u64::MAX, u64::MAX - 1, MAX_QUEUE_NUM)
        .with_host_features(&[0xff; 255])
        .with_guest_features(&[0x5a; 255])
        .with_config(&[0xee; 255]);
    for specs in [
        vec![],
        vec![net()],
        vec![blk(), blk(), blk()],
        vec![console(), net(), blk(), big.clone()],
        vec![big],
    ] {
        let page = build(&specs);
        let devs = parse(&page).unwrap();
        check_devices(&page, &devs);
        let back: Vec<LegacyDeviceSpec> = devs.iter().map(spec_of).collect();
        // The page always holds both bitmaps at full length.
        let padded: Vec<LegacyDeviceSpec> = specs
            .iter()
            .map(|s| {
                let mut s = s.clone();
                let n = s.feature_len();
                s.host_features.resize(n, 0);
                s.guest_features.resize(n, 0);
                s
            })
            .collect();
        assert_eq!(back, padded);
    }
}

#[test]
fn builder_pads_feature_bitmaps() {
    let spec = LegacyDeviceSpec::new(2)
        .with_queue(0, 0, 8)
        .with_host_features(&[1])
        .with_guest_features(&[2, 3, 4]);
    assert_eq!(spec.feature_len(), 3);
    assert_eq!(spec.encoded_len(), 5 + 24 + 6);
    let page = build(&[spec]);
    let d = &parse(&page).unwrap()[0];
    assert_eq!(d.host_features, [1, 0, 0]);
    assert_eq!(d.guest_features, [2, 3, 4]);
}

#[test]
fn driver_writes_in_place() {
    let mut page = build(&[net(), blk()]);
    let devs = parse(&page).unwrap();
    let d = &devs[1];
    page[d.status_offset()] = 0x0f;
    let guest = &mut page[d.guest_features_range()];
    guest.fill(0);
    assert!(set_feature_bit(guest, 6));
    assert!(!set_feature_bit(guest, 8));
    assert!(!set_feature_bit(guest, u32::MAX));
    let t = d.queues[0].token_offset();
    page[t..t + 8].copy_from_slice(&0x1234u64.to_be_bytes());

    let again = parse(&page).unwrap();
    assert_eq!(again[0], devs[0]);
    assert_eq!(again[1].status, 0x0f);
    assert_eq!(again[1].guest_features, [0x40]);
    assert!(feature_bit(&again[1].guest_features, 6));
    assert_eq!(again[1].queues[0].token, 0x1234);
    assert_eq!(again[1].host_features, devs[1].host_features);
}

#[test]
fn feature_bits() {
    let mut bm = [0u8; 2];
    assert!(!feature_bit(&bm, 0));
    for bit in [0, 3, 9, 15] {
        assert!(set_feature_bit(&mut bm, bit));
    }
    assert_eq!(bm, [0x09, 0x82]);
    assert!(feature_bit(&bm, 9) && !feature_bit(&bm, 10));
    assert!(!feature_bit(&bm, 16) && !feature_bit(&[], 0));
}

/// The terminator needs only its type byte, even in the page's last byte.
#[test]
fn terminator_in_last_byte() {
    let spec = console();
    let len = spec.encoded_len() + 1;
    let page = LegacyPageBuilder::new(len).device(spec).build().unwrap();
    assert_eq!(page.len(), len);
    let devs = parse(&page).unwrap();
    assert_eq!(devs.len(), 1);
    assert_eq!(devs[0].end(), len - 1);
}

/// Cut a page at every byte of a descriptor: each field in turn is the
/// one that runs past the end.
#[test]
fn truncated_at_every_field() {
    let first = blk();
    let second = net(); // 67 bytes: body is 62
    let page = build(&[first.clone(), second]);
    let at = first.encoded_len();
    for cut in 0..=at + 67 + 1 {
        let got = parse(&page[..cut]);
        let (index, offset, rel) = if cut < at {
            (0, 0, cut)
        } else {
            (1, at, cut - at)
        };
        let device_type = if index == 0 { 2 } else { 1 };
        let body_len = if index == 0 { at - 5 } else { 62 };
        let want = match rel {
            0 => Err(LegacyPageError::NoTerminator {
                devices: index,
                offset: cut,
                page_len: cut,
            }),
            1..=4 => Err(LegacyPageError::HeaderPastEnd {
                index,
                offset,
                device_type,
                needed: 5,
                available: rel,
            }),
            r if r < body_len + 5 => {
                let d = if index == 0 { blk() } else { net() };
                Err(LegacyPageError::BodyPastEnd {
                    index,
                    offset,
                    device_type,
                    num_vq: d.queues.len() as u8,
                    feature_len: d.feature_len() as u8,
                    config_len: d.config.len() as u8,
                    needed: body_len,
                    available: rel - 5,
                })
            }
            _ if cut == at + 67 => Err(LegacyPageError::NoTerminator {
                devices: 2,
                offset: cut,
                page_len: cut,
            }),
            _ => {
                let devs = got.clone().unwrap();
                check_devices(&page[..cut], &devs);
                Ok(devs)
            }
        };
        assert_eq!(got, want, "cut at {cut}");
    }
}

fn header_page(len: usize, header: [u8; 5]) -> Vec<u8> {
    let mut page = vec![0u8; len];
    page[..5].copy_from_slice(&header);
    // A valid first queue where there is room for one.
    if len >= 5 + 24 {
        page[5 + 16] = 1;
    }
    page
}

#[test]
fn huge_counts_run_past_the_page() {
    let cases = [
        // (page length, header, needed after the header)
        (PAGE_SIZE, [1, 255, 0, 0, 0], 255 * 24),
        (100, [1, 1, 255, 0, 0], 24 + 2 * 255),
        (100, [1, 1, 0, 255, 0], 24 + 255),
        (PAGE_SIZE, [9, 255, 255, 255, 0], 255 * 24 + 3 * 255),
    ];
    for (len, h, needed) in cases {
        let got = parse(&header_page(len, h));
        assert_eq!(
            got,
            Err(LegacyPageError::BodyPastEnd {
                index: 0,
                offset: 0,
                device_type: h[0],
                num_vq: h[1],
                feature_len: h[2],
                config_len: h[3],
                needed,
                available: len - 5
            }),
            "{h:?}"
        );
    }
    assert!(matches!(
        parse(&[0xff; PAGE_SIZE]),
        Err(LegacyPageError::BodyPastEnd {
            needed: 6885,
            available: 4091,
            ..
        })
    ));
    // The largest bitmaps and config do fit a real page.
    let devs = parse(&header_page(PAGE_SIZE, [2, 1, 255, 255, 0])).unwrap();
    assert_eq!(devs[0].len(), 5 + 24 + 3 * 255);
}

#[test]
fn no_terminator() {
    let min = LegacyDeviceSpec::new(4).with_queue(0, 0, 1);
    assert_eq!(min.encoded_len(), MIN_DESC_LEN);
    // Three minimal devices exactly filling the page.
    let page = build(&[min.clone(), min.clone(), min.clone()]);
    assert_eq!(
        parse(&page[..3 * MIN_DESC_LEN]),
        Err(LegacyPageError::NoTerminator {
            devices: 3,
            offset: 87,
            page_len: 87
        })
    );
    // The most devices a real page holds: 140 minimal ones and one of 36
    // bytes fill it exactly; with one byte less of config the last byte
    // is the terminator.
    let mut b = LegacyPageBuilder::new(PAGE_SIZE + 1);
    for _ in 0..140 {
        b.push(min.clone());
    }
    let full = b
        .clone()
        .device(min.clone().with_config(&[7; 7]))
        .build()
        .unwrap();
    assert_eq!(
        parse(&full[..PAGE_SIZE]),
        Err(LegacyPageError::NoTerminator {
            devices: 141,
            offset: PAGE_SIZE,
            page_len: PAGE_SIZE
        })
    );
    let fits = b.device(min.with_config(&[7; 6])).build().unwrap();
    let devs = parse(&fits[..PAGE_SIZE]).unwrap();
    assert_eq!(devs.len(), 141);
    check_devices(&fits[..PAGE_SIZE], &devs);
}

#[test]
fn device_without_queues() {
    let page = build(&[net(), LegacyDeviceSpec::new(5).with_config(&[1, 2])]);
    assert_eq!(
        parse(&page),
        Err(LegacyPageError::NoQueues {
            index: 1,
            offset: 67,
            device_type: 5
        })
    );
    // Refused even when the rest of the header would not fit.
    assert_eq!(
        parse(&[5, 0, 0, 0, 0]),
        Err(LegacyPageError::NoQueues {
            index: 0,
            offset: 0,
            device_type: 5
        })
    );
}

#[test]
fn queue_of_zero_entries() {
    let page = build(&[console().with_queue(3, 0x40_0000, 0)]);
    assert_eq!(
        parse(&page),
        Err(LegacyPageError::ZeroQueueSize {
            index: 0,
            offset: 0,
            device_type: 3,
            queue: 2,
            queue_offset: 5 + 2 * 24
        })
    );
}

#[test]
fn ring_sizes() {
    for shift in 0..=15 {
        let num = 1u16 << shift;
        let page = build(&[LegacyDeviceSpec::new(2).with_queue(0, 0, num)]);
        assert_eq!(parse(&page).unwrap()[0].queues[0].num, num);
    }
    for num in [
        3,
        6,
        100,
        255,
        257,
        1000,
        32767,
        32769,
        0x8001,
        0xc000,
        u16::MAX,
    ] {
        let page = build(&[
            blk(),
            LegacyDeviceSpec::new(2)
                .with_queue(0, 0, 16)
                .with_queue(0, 0, num),
        ]);
        let offset = blk().encoded_len();
        assert_eq!(
            parse(&page),
            Err(LegacyPageError::BadQueueSize {
                index: 1,
                offset,
                device_type: 2,
                queue: 1,
                queue_offset: offset + 5 + 24,
                num
            }),
            "num {num}"
        );
    }
}

#[test]
fn error_messages() {
    let msg = |e: LegacyPageError| crate::format!("{}", e);
    assert_eq!(
            msg(LegacyPageError::HeaderPastEnd {
                index: 3,
                offset: 0xffe,
                device_type: 2,
                needed: 5,
                available: 2
            }),
            "legacy virtio page: descriptor 3 at offset 0xffe (type 2, blk): header needs 5 bytes, only 2 left in the page"
        );
    assert_eq!(
            msg(LegacyPageError::BodyPastEnd {
                index: 0,
                offset: 0,
                device_type: 200,
                num_vq: 255,
                feature_len: 1,
                config_len: 2,
                needed: 6124,
                available: 4091
            }),
            "legacy virtio page: descriptor 0 at offset 0x0 (type 200, unknown): 255 queues, 2 x 1 feature bytes and 2 config bytes need 6124 bytes after the header, only 4091 left in the page"
        );
    assert_eq!(
            msg(LegacyPageError::NoTerminator {
                devices: 2,
                offset: 4096,
                page_len: 4096
            }),
            "legacy virtio page: no terminator (type 0) in the 4096-byte page: 2 descriptors, then the page ends at offset 0x1000"
        );
    assert_eq!(
            msg(LegacyPageError::NoQueues {
                index: 1,
                offset: 0x43,
                device_type: 5
            }),
            "legacy virtio page: descriptor 1 at offset 0x43 (type 5, balloon) has no virtqueues (num_vq 0)"
        );
    assert_eq!(
            msg(LegacyPageError::ZeroQueueSize {
                index: 0,
                offset: 0,
                device_type: 1,
                queue: 1,
                queue_offset: 29
            }),
            "legacy virtio page: descriptor 0 at offset 0x0 (type 1, net): queue 1 (at offset 0x1d) has 0 entries"
        );
    assert_eq!(
            msg(LegacyPageError::BadQueueSize {
                index: 0,
                offset: 0,
                device_type: 3,
                queue: 0,
                queue_offset: 5,
                num: 100
            }),
            "legacy virtio page: descriptor 0 at offset 0x0 (type 3, console): queue 0 (at offset 0x5) has 100 entries: not a power of two"
        );
    assert!(msg(LegacyPageError::BadQueueSize {
        index: 0,
        offset: 0,
        device_type: 3,
        queue: 0,
        queue_offset: 5,
        num: 40000
    })
    .ends_with("has 40000 entries: more than the maximum 32768"));
}

#[test]
fn builder_errors() {
    let one = |spec: LegacyDeviceSpec| {
        LegacyPageBuilder::default()
            .device(net())
            .device(spec)
            .build()
    };
    assert_eq!(
        one(LegacyDeviceSpec::new(0).with_queue(0, 0, 1)),
        Err(LegacyBuildError::TypeZero { index: 1 })
    );
    let mut many = LegacyDeviceSpec::new(1);
    many.queues = vec![
        QueueSpec {
            token: 0,
            address: 0,
            num: 1
        };
        256
    ];
    assert_eq!(
        one(many),
        Err(LegacyBuildError::TooManyQueues {
            index: 1,
            count: 256
        })
    );
    assert_eq!(
        one(LegacyDeviceSpec::new(1).with_guest_features(&[0; 256])),
        Err(LegacyBuildError::FeaturesTooLong { index: 1, len: 256 })
    );
    assert_eq!(
        one(LegacyDeviceSpec::new(1).with_config(&[0; 300])),
        Err(LegacyBuildError::ConfigTooLong { index: 1, len: 300 })
    );
    let exact = net().encoded_len() + 1;
    assert!(LegacyPageBuilder::new(exact).device(net()).build().is_ok());
    assert_eq!(
        LegacyPageBuilder::new(exact - 1).device(net()).build(),
        Err(LegacyBuildError::PageTooSmall {
            needed: exact,
            page_len: exact - 1
        })
    );
    assert_eq!(
        LegacyPageBuilder::new(0).build(),
        Err(LegacyBuildError::PageTooSmall {
            needed: 1,
            page_len: 0
        })
    );
    assert_eq!(
        crate::format!(
            "{}",
            LegacyBuildError::PageTooSmall {
                needed: 68,
                page_len: 67
            }
        ),
        "legacy page: the devices and terminator need 68 bytes, the page has 67"
    );
    assert_eq!(
        crate::format!(
            "{}",
            LegacyBuildError::TooManyQueues {
                index: 2,
                count: 256
            }
        ),
        "legacy page device 2: 256 queues, at most 255 fit"
    );
    assert_eq!(
        LegacyPageBuilder::default().device(net()).devices(),
        &[net()]
    );
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// A byte that is often one of the interesting small values.
    fn count(&mut self) -> u8 {
        match self.below(8) {
            0 => 0,
            1 => 255,
            2..=5 => self.below(4) as u8,
            _ => self.byte(),
        }
    }

    fn ring_size(&mut self) -> u16 {
        match self.below(10) {
            0 => 0,
            1 => self.next() as u16,
            _ => 1 << self.below(16),
        }
    }
}

/// Pages that look roughly like device pages: plausible headers with
/// random counts, mostly valid ring sizes, random cut and noise.
fn plausible_page(rng: &mut XorShift) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => PAGE_SIZE,
        _ => rng.below(400) as usize,
    };
    let mut page = vec![0u8; len];
    let mut at = 0;
    while at < len && rng.below(6) != 0 {
        let (num_vq, fl, cl) = (rng.count() % 5, rng.count() % 9, rng.count() % 17);
        let head = [rng.byte() | 1, num_vq, fl, cl, rng.byte()];
        for (k, b) in head.iter().enumerate() {
            if let Some(p) = page.get_mut(at + k) {
                *p = *b;
            }
        }
        for q in 0..usize::from(num_vq) {
            let qa = at + 5 + q * 24;
            let num = rng.ring_size().to_be_bytes();
            for k in 0..16 {
                if let Some(p) = page.get_mut(qa + k) {
                    *p = rng.byte();
                }
            }
            for (k, b) in num.iter().enumerate() {
                if let Some(p) = page.get_mut(qa + 16 + k) {
                    *p = *b;
                }
            }
        }
        let body = usize::from(num_vq) * 24 + 2 * usize::from(fl) + usize::from(cl);
        for k in 0..2 * usize::from(fl) + usize::from(cl) {
            if let Some(p) = page.get_mut(at + 5 + usize::from(num_vq) * 24 + k) {
                *p = rng.byte();
            }
        }
        at += 5 + body;
    }
    for _ in 0..rng.below(3) {
        if len > 0 {
            let i = rng.below(len as u64) as usize;
            page[i] = rng.byte();
        }
    }
    page
}

fn check_outcome(page: &[u8], got: &Result<Vec<LegacyDevice>, LegacyPageError>) {
    match got {
        Ok(devs) => check_devices(page, devs),
        Err(LegacyPageError::NoTerminator {
            offset, page_len, ..
        }) => {
            assert_eq!((*offset, *page_len), (page.len(), page.len()));
        }
        Err(LegacyPageError::HeaderPastEnd {
            offset, available, ..
        }) => {
            assert!(*available < HEADER_LEN && offset + available == page.len());
        }
        Err(LegacyPageError::BodyPastEnd {
            offset,
            needed,
            available,
            ..
        }) => {
            assert!(available < needed && offset + 5 + available == page.len());
        }
        Err(LegacyPageError::NoQueues { offset, .. }) => {
            assert_eq!(page.get(offset + 1), Some(&0));
        }
        Err(LegacyPageError::ZeroQueueSize { queue_offset, .. }) => {
            assert_eq!(
                page.get(queue_offset + 16..queue_offset + 18),
                Some(&[0u8, 0][..])
            );
        }
        Err(LegacyPageError::BadQueueSize {
            queue_offset, num, ..
        }) => {
            let b = page.get(queue_offset + 16..queue_offset + 18).unwrap();
            assert_eq!(u16::from_be_bytes([b[0], b[1]]), *num);
        }
    }
}

/// Many pseudo-random pages: the parser never panics, every device it
/// returns lies inside the page, every error points inside the page,
/// and each kind of outcome turns up.
#[test]
fn random_pages_never_escape() {
    let mut rng = XorShift(0x5a76_7465_7374_0001);
    let mut seen = [0usize; 7];
    for round in 0..30_000 {
        let page = match round % 3 {
            0 => {
                let len = rng.below(300) as usize;
                (0..len).map(|_| rng.count()).collect()
            }
            1 => plausible_page(&mut rng),
            _ => {
                // A valid page (of up to 3 devices; its length cut at
                // random) with a few bytes changed.
                let pool = [net(), blk(), console()];
                let specs: Vec<_> = (0..rng.below(4))
                    .map(|_| pool[rng.below(3) as usize].clone())
                    .collect();
                let mut page = build(&specs);
                page.truncate(1 + rng.below(300) as usize);
                for _ in 0..rng.below(4) {
                    if !page.is_empty() {
                        let i = rng.below(page.len() as u64) as usize;
                        page[i] = rng.count();
                    }
                }
                page
            }
        };
        let got = parse(&page);
        check_outcome(&page, &got);
        let kind = match got {
            Ok(ref d) if d.is_empty() => 0,
            Ok(_) => 1,
            Err(LegacyPageError::NoTerminator { .. }) => 2,
            Err(LegacyPageError::HeaderPastEnd { .. }) => 3,
            Err(LegacyPageError::BodyPastEnd { .. }) => 4,
            Err(LegacyPageError::NoQueues { .. }) => 5,
            Err(_) => 6,
        };
        seen[kind] += 1;
        // Formatting never panics either.
        if let Err(e) = got {
            assert!(!crate::format!("{}", e).is_empty());
        }
    }
    assert!(seen.iter().all(|&n| n > 0), "outcomes seen: {seen:?}");
    assert!(seen[1] > 1000, "too few good pages: {seen:?}");
}
