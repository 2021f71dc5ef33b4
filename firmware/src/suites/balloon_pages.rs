//! virtio-balloon's queues: pages given to the host and taken back by
//! page frame number (`balloon.inflate`), statistics posted when the
//! device asks (`balloon.stats`), free pages reported (`balloon.report`)
//! and free page hints (`balloon.hint`). What only the host sees (QEMU's
//! `query-balloon`, QOM `guest-stats`) its peer checks at our markers and
//! answers with a balloon target, a configuration change we wait for:
//! the peer's verdict joins the run's, and the target it sets tells us
//! what it counted.

use crate::check::Outcome;
use crate::checks::markers;
use crate::discovery::Device;
use crate::dma::DmaMemory;
use crate::fmt::Hex;
use crate::fmt::ToText;
use crate::format;
use crate::inventory::BusId;
use crate::machine::Machine;
use crate::virtio::ccw::CcwTransport;
use crate::virtio::devices::balloon::{self, BalloonQueue};
use crate::virtio::indicators::{IndicatorMode, Indicators};
use crate::virtio::queue::{setup_queue, DmaBuffer, Queue};
use crate::virtio::transport::{driver_ok_status, has, negotiate, Transport};
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use zvtest_contract::balloon::{stat_line, BalloonConfig, PAGE};

/// How long the host's peer has to answer one of our markers.
const HOST_WAIT_US: u64 = 10_000_000;

/// Every queue feature the device offers is accepted: QEMU places its
/// queues by what it offers (devices::balloon::queue_index).
const QUEUE_FEATURES: u64 =
    1 << balloon::F_STATS_VQ | 1 << balloon::F_FREE_PAGE_HINT | 1 << balloon::F_PAGE_REPORTING;

/// A balloon at DRIVER_OK with every queue set up.
struct Open {
    t: CcwTransport,
    ind: Indicators,
    queues: Vec<Queue>,
    features: u64,
    bus: BusId,
}

impl Open {
    fn queue(&mut self, q: BalloonQueue) -> Option<&mut Queue> {
        let i = balloon::queue_index(self.features, q)?;
        self.queues.get_mut(usize::from(i))
    }

    /// Sends `payload` (device-readable) on queue `q` and waits for it back.
    fn send(&mut self, q: BalloonQueue, payload: &[u8], what: &str) -> Result<(), Outcome> {
        let mem = Rc::new(DmaMemory::new(payload.len()));
        mem.write(0, payload);
        let bus = self.bus;
        let Some(i) = balloon::queue_index(self.features, q) else {
            return Err(Outcome::fail(&format!(
                "{} balloon: no queue for {}",
                bus, what
            )));
        };
        let queue = &mut self.queues[usize::from(i)];
        let chain = [DmaBuffer {
            mem: &mem,
            offset: 0,
            len: payload.len() as u32,
            device_writable: false,
        }];
        let r = queue
            .submit(&mut self.t, &chain, false)
            .and_then(|token| queue.wait_used(&mut self.t).map(|u| (token, u)));
        match r {
            Ok((token, u)) if u.token == token => Ok(()),
            Ok((token, u)) => Err(Outcome::mismatch(
                &format!("{} balloon queue {}: used token for {}", bus, i, what),
                token,
                u.token,
            )),
            Err(e) => Err(Outcome::mismatch(
                &format!("{} balloon queue {}: {}", bus, i, what),
                "the buffer used",
                format!("{}", e).as_str(),
            )),
        }
    }

    /// Waits for the host's configuration change (its answer to a
    /// marker) and returns `num_pages`.
    fn host_answer(&mut self, after: &str) -> Result<u32, Outcome> {
        let ind = &self.ind;
        let came = self.t.wait(crate::host_wait::us(HOST_WAIT_US), &mut || {
            ind.config_flagged()
        });
        if !came {
            return Err(Outcome::mismatch(
                &format!("{} balloon: the host's answer to '{}'", self.bus, after),
                "a configuration change (the host's peer sets a balloon target)",
                format!(
                    "none within {}",
                    crate::host_wait::text(HOST_WAIT_US).as_str()
                )
                .as_str(),
            ));
        }
        self.ind.acknowledge();
        balloon::read_config(&mut self.t)
            .map(|c| c.num_pages)
            .map_err(|e| {
                Outcome::mismatch(
                    &format!("{} balloon: reading num_pages", self.bus),
                    "READ_CONF",
                    format!("{}", e).as_str(),
                )
            })
    }

    fn set_actual(&mut self, actual: u32) -> Result<(), Outcome> {
        balloon::read_config(&mut self.t)
            .and_then(|c| balloon::set_actual(&mut self.t, c, actual))
            .map_err(|e| {
                Outcome::mismatch(
                    &format!("{} balloon: writing actual {}", self.bus, actual),
                    "WRITE_CONF",
                    format!("{}", e).as_str(),
                )
            })
    }
}

/// Opens `d` at `revision` with every queue; None where the device does
/// not take that revision.
fn open(d: &Device, revision: u8) -> Result<Option<Open>, Outcome> {
    let bus = d.bus_id();
    let err = |what: &str, e: &dyn ToText| {
        Outcome::mismatch(
            &format!("{} balloon rev {}: {}", bus, revision, what),
            "done",
            e.text().as_str(),
        )
    };
    let mut t = CcwTransport::open(d.subchannel.sid, revision).map_err(|e| err("open", &e))?;
    if t.revision() != revision {
        return Ok(None);
    }
    let features = negotiate(&mut t, QUEUE_FEATURES).map_err(|e| err("negotiate", &e))?;
    let ind =
        Indicators::install(&mut t, IndicatorMode::Classic).map_err(|e| err("indicators", &e))?;
    let mut queues = Vec::new();
    for i in 0..balloon::queue_count(features) {
        queues.push(setup_queue(&mut t, i, features, false).map_err(|e| err("queue set-up", &e))?);
    }
    t.set_status(driver_ok_status(revision))
        .map_err(|e| err("DRIVER_OK", &e))?;
    Ok(Some(Open {
        t,
        ind,
        queues,
        features,
        bus,
    }))
}

/// The balloon `balloon=` names, or why there is nothing to do.
fn configured<'m>(
    m: &'m Machine,
    want: impl Fn(&BalloonConfig) -> bool,
    skip: &str,
) -> Result<(BalloonConfig, &'m Device), Outcome> {
    let Some(cfg) = m.cfg.balloon.clone().filter(|c| want(c)) else {
        return Err(Outcome::skip(skip));
    };
    let Some(d) = m
        .inventory
        .virtio_devices(balloon::DEVICE_ID)
        .find(|d| d.bus_id() == cfg.bus)
    else {
        return Err(Outcome::mismatch(
            "balloon= names a device that is not a virtio-balloon",
            format!("a balloon at {}", cfg.bus).as_str(),
            "none there",
        ));
    };
    Ok((cfg, d))
}

/// The word page `addr`'s word `i` holds before it goes to the device.
fn pattern(seed: u64, addr: u64, i: usize) -> u64 {
    zvtest_contract::disk::mix(seed ^ addr.rotate_left(17) ^ i as u64)
}

/// Fills `pages` (whole pages of `mem`) with [`pattern`].
fn fill(mem: &DmaMemory, seed: u64) {
    for page in 0..mem.len() / PAGE as usize {
        let addr = mem.addr() + page as u64 * PAGE;
        let mut i = 0;
        mem.fill_words(page * PAGE as usize, PAGE as usize / 8, || {
            i += 1;
            pattern(seed, addr, i - 1)
        });
    }
}

/// The first page of `mem` that is not all zero: the host discards what
/// it is given (QEMU: balloon_inflate_page and virtio_balloon_handle_report
/// in hw/virtio/virtio-balloon.c drop the host's copy, so the guest reads
/// zeros afterwards).
fn first_kept_page(mem: &DmaMemory) -> Option<(usize, u64)> {
    let pages = mem.len() / PAGE as usize;
    (0..pages).find_map(|p| {
        let mut got = 0;
        mem.scan_words(p * PAGE as usize, PAGE as usize / 8, |w| {
            got = w;
            w == 0
        })
        .map(|_| (p, got))
    })
}

/// Writes the pattern over `mem` again and reads it back: the pages are
/// ordinary memory once more.
fn writes_back(mem: &DmaMemory, seed: u64, bus: BusId) -> Result<(), Outcome> {
    let seed = seed ^ 0x5a5a;
    fill(mem, seed);
    for page in 0..mem.len() / PAGE as usize {
        let addr = mem.addr() + page as u64 * PAGE;
        let mut i = 0;
        let bad = mem.scan_words(page * PAGE as usize, PAGE as usize / 8, |w| {
            i += 1;
            w == pattern(seed, addr, i - 1)
        });
        if let Some(word) = bad {
            return Err(Outcome::mismatch(
                &format!(
                    "{} balloon: a deflated page written and read back (page {}, word {}, seed={})",
                    bus,
                    Hex(addr),
                    word,
                    Hex(seed)
                ),
                Hex(pattern(seed, addr, word)),
                "another value",
            ));
        }
    }
    Ok(())
}

/// The page frame numbers of `mem`.
fn pfns(mem: &DmaMemory) -> impl Iterator<Item = u32> + '_ {
    let first = mem.addr() / PAGE;
    (0..(mem.len() as u64 / PAGE)).map(move |i| (first + i) as u32)
}

/// `balloon.inflate`: `inflate=N` pages (4 KiB, from our heap) given to
/// the device on the inflate queue by page frame number and `actual` set
/// to N; the host's peer holds QEMU's `query-balloon` to the storage less
/// N pages and answers with that target, so `num_pages` must read N. Then
/// the same pages deflated, `actual` 0, the peer holds `query-balloon` to
/// the whole storage and `num_pages` must read 0. The pages are not
/// touched while inflated; afterwards QEMU has discarded them (they read
/// zero: checked under QEMU, where `qemu-version=` says so) and they are
/// written and read back. Revision 0 repeats it with big-endian page
/// numbers (no host check there: the discard shows the device found the
/// pages).
pub fn inflate(m: &mut Machine) -> Outcome {
    let (cfg, d) = match configured(
        m,
        |c| c.inflate > 0,
        "no balloon=BUS:inflate=N (the host's peer checks query-balloon against N)",
    ) {
        Ok(x) => x,
        Err(o) => return o,
    };
    let under_qemu = m.cfg.qemu_version.is_some();
    let seed = m.cfg.seed;
    let r = (|| -> Result<String, Outcome> {
        let Some(mut o) = open(d, 2)? else {
            return Err(Outcome::fail(&format!(
                "{} balloon: revision 2 refused",
                d.bus_id()
            )));
        };
        // Test only (`skew`): one page more than the host's peer expects.
        let n = cfg.inflate + u32::from(cfg.skew);
        let pages = Rc::new(DmaMemory::new(n as usize * PAGE as usize));
        fill(&pages, seed);
        // The device may store into them (a discard) until it is reset.
        o.t.held().keep(&pages);
        o.send(
            BalloonQueue::Inflate,
            &balloon::pfn_request(pfns(&pages), 2),
            "the inflate request",
        )?;
        o.set_actual(n)?;
        let marker = format!("{} {} {}", markers::BALLOON_INFLATED, o.bus, n);
        crate::out!("{}\n", marker.as_str());
        let counted = o.host_answer(&marker)?;
        if counted != n {
            return Err(Outcome::mismatch(
                &format!(
                    "{} balloon: pages the host counts after inflating (its target's num_pages)",
                    o.bus
                ),
                n,
                counted,
            ));
        }
        o.send(
            BalloonQueue::Deflate,
            &balloon::pfn_request(pfns(&pages), 2),
            "the deflate request",
        )?;
        o.set_actual(0)?;
        let marker = format!("{} {}", markers::BALLOON_DEFLATED, o.bus);
        crate::out!("{}\n", marker.as_str());
        let counted = o.host_answer(&marker)?;
        if counted != 0 {
            return Err(Outcome::mismatch(
                &format!("{} balloon: pages the host counts after deflating", o.bus),
                0u32,
                counted,
            ));
        }
        let mut note = format!("{} pages inflated and deflated at revision 2", n);
        if under_qemu {
            if let Some((p, got)) = first_kept_page(&pages) {
                return Err(Outcome::mismatch(
                    &format!(
                        "{} balloon: page {} after inflate and deflate (QEMU discards inflated pages)",
                        o.bus,
                        Hex(pages.addr() + p as u64 * PAGE)
                    ),
                    "zeros",
                    Hex(got),
                ));
            }
            note.push_str(", each read back zero (discarded by the host)");
        }
        writes_back(&pages, seed, o.bus)?;
        let _ = o.t.reset();
        drop(o);
        // Revision 0: the same by big-endian page numbers.
        if let Some(mut o) = open(d, 0)? {
            let pages = Rc::new(DmaMemory::new(4 * PAGE as usize));
            fill(&pages, seed);
            o.t.held().keep(&pages);
            o.send(
                BalloonQueue::Inflate,
                &balloon::pfn_request(pfns(&pages), 0),
                "the inflate request (rev 0)",
            )?;
            o.send(
                BalloonQueue::Deflate,
                &balloon::pfn_request(pfns(&pages), 0),
                "the deflate request (rev 0)",
            )?;
            if under_qemu {
                if let Some((p, got)) = first_kept_page(&pages) {
                    return Err(Outcome::mismatch(
                        &format!(
                            "{} balloon rev 0: page {} after inflate and deflate by big-endian page numbers",
                            o.bus,
                            Hex(pages.addr() + p as u64 * PAGE)
                        ),
                        "zeros",
                        Hex(got),
                    ));
                }
            }
            writes_back(&pages, seed, o.bus)?;
            let _ = o.t.reset();
            note.push_str("; 4 at revision 0");
        }
        Ok(note)
    })();
    match r {
        Ok(note) => Outcome::PassNote(note),
        Err(o) => o,
    }
}

/// The statistics we report: facts of our own storage and heap (there is
/// no paging, no swap, no cache, no huge page here: those are 0).
fn statistics(memory: u64) -> Vec<(u16, u64)> {
    let heap = crate::memory::heap_stats();
    alloc::vec![
        (balloon::S_SWAP_IN, 0),
        (balloon::S_SWAP_OUT, 0),
        (balloon::S_MAJFLT, 0),
        (balloon::S_MINFLT, 0),
        (balloon::S_MEMFREE, heap.free),
        (balloon::S_MEMTOT, memory),
        (balloon::S_AVAIL, heap.free),
        (balloon::S_CACHES, 0),
        (balloon::S_HTLB_PGALLOC, 0),
        (balloon::S_HTLB_PGFAIL, 0),
    ]
}

/// `balloon.stats`: the first statistics buffer (MEMTOT alone) posted at
/// DRIVER_OK as the spec asks; the host's peer then turns on QEMU's
/// polling (QOM `guest-stats-polling-interval`), the device gives the
/// buffer back, and we post every statistic (printed first as
/// `# balloon BUS stat TAG NAME VALUE`); the peer compares QOM
/// `guest-stats` with them (QEMU forgets what a buffer leaves out, so
/// the first buffer's lone value shows through if the second was not
/// taken) and answers with a configuration change.
pub fn stats(m: &mut Machine) -> Outcome {
    let (cfg, d) = match configured(
        m,
        |c| c.stats,
        "no balloon=BUS:stats (the host's peer reads QOM guest-stats)",
    ) {
        Ok(x) => x,
        Err(o) => return o,
    };
    let memory = m.memory;
    let r = (|| -> Result<(), Outcome> {
        let Some(mut o) = open(d, 2)? else {
            return Err(Outcome::fail(&format!(
                "{} balloon: revision 2 refused",
                d.bus_id()
            )));
        };
        if !has(o.features, balloon::F_STATS_VQ) {
            return Err(Outcome::mismatch(
                &format!("{} balloon: features offered", o.bus),
                "STATS_VQ (QEMU always offers it)",
                Hex(o.features),
            ));
        }
        let first = balloon::stats_buffer(&[(balloon::S_MEMTOT, memory)], 2);
        let mem = Rc::new(DmaMemory::new(balloon::STAT_LEN * 16));
        mem.write(0, &first);
        let index = balloon::queue_index(o.features, BalloonQueue::Stats).expect("STATS_VQ");
        let q = &mut o.queues[usize::from(index)];
        let chain = |len: usize| {
            [DmaBuffer {
                mem: &mem,
                offset: 0,
                len: len as u32,
                device_writable: false,
            }]
        };
        let token = q
            .submit(&mut o.t, &chain(first.len()), false)
            .map_err(|e| {
                Outcome::mismatch(
                    &format!("{} balloon queue {}: the first statistics", o.bus, index),
                    "posted",
                    format!("{}", e).as_str(),
                )
            })?;
        crate::out!("{} {}\n", markers::BALLOON_STATS_READY, o.bus);
        // The device gives the buffer back when it wants statistics.
        let mut used = None;
        let mut err = None;
        {
            let q = o.queues.get_mut(usize::from(index)).expect("set up");
            o.t.wait(
                crate::host_wait::us(HOST_WAIT_US),
                &mut || match q.try_used() {
                    Ok(Some(u)) => {
                        used = Some(u);
                        true
                    }
                    Ok(None) => false,
                    Err(e) => {
                        err = Some(e);
                        true
                    }
                },
            );
        }
        if let Some(e) = err {
            return Err(Outcome::mismatch(
                &format!(
                    "{} balloon queue {}: the statistics buffer back",
                    o.bus, index
                ),
                "a used buffer",
                format!("{}", e).as_str(),
            ));
        }
        match used {
            None => {
                return Err(Outcome::mismatch(
                    &format!(
                        "{} balloon queue {}: the device asking for statistics (the host's peer turns QEMU's polling on)",
                        o.bus, index
                    ),
                    "the first buffer given back",
                    format!("nothing within {}", crate::host_wait::text(HOST_WAIT_US).as_str()).as_str(),
                ))
            }
            Some(u) if u.token != token => {
                return Err(Outcome::mismatch(
                    &format!("{} balloon queue {}: used token", o.bus, index),
                    token,
                    u.token,
                ))
            }
            Some(_) => {}
        }
        let stats = statistics(memory);
        let bus = d.bus_id();
        for &(tag, value) in &stats {
            crate::out!("{}\n", stat_line(bus, tag, value).as_str());
        }
        let mut posted = stats.clone();
        if cfg.skew {
            // Test only: one byte more free memory than printed.
            for s in posted.iter_mut().filter(|s| s.0 == balloon::S_MEMFREE) {
                s.1 += 1;
            }
        }
        let second = balloon::stats_buffer(&posted, 2);
        mem.write(0, &second);
        let q = o.queues.get_mut(usize::from(index)).expect("set up");
        q.submit(&mut o.t, &chain(second.len()), false)
            .map_err(|e| {
                Outcome::mismatch(
                    &format!(
                        "{} balloon queue {}: the statistics asked for",
                        o.bus, index
                    ),
                    "posted",
                    format!("{}", e).as_str(),
                )
            })?;
        let marker = format!("{} {}", markers::BALLOON_STATS_POSTED, o.bus);
        crate::out!("{}\n", marker.as_str());
        o.host_answer(&marker)?;
        let _ = o.t.reset();
        Ok(())
    })();
    match r {
        Ok(()) => Outcome::PassNote(String::from(
            "10 statistics posted when the device asked; the host's peer compares them",
        )),
        Err(o) => o,
    }
}

/// Free page reports: ranges of 1, 2, 4 and 8 pages, and one chain of
/// two ranges, each device-writable.
const REPORT_RANGES: &[&[usize]] = &[&[1], &[2], &[4], &[8], &[2, 3]];

/// `balloon.report`: free page reporting (`free-page-reporting=on`):
/// free ranges of our heap, filled with a pattern, reported on the
/// reporting queue, all in flight at once; each must come back used, no
/// longer than it was. Under QEMU each reported page then reads zero (it
/// discarded them) and is written and read back.
pub fn report(m: &mut Machine) -> Outcome {
    let Some(d) = m.inventory.virtio_devices(balloon::DEVICE_ID).next() else {
        return Outcome::skip("no virtio-balloon-ccw device");
    };
    let said = m
        .cfg
        .balloon
        .as_ref()
        .filter(|c| c.bus == d.bus_id())
        .map(|c| c.report);
    let under_qemu = m.cfg.qemu_version.is_some();
    let seed = m.cfg.seed;
    let r = (|| -> Result<String, Outcome> {
        let Some(mut o) = open(d, 2)? else {
            return Err(Outcome::fail(&format!(
                "{} balloon: revision 2 refused",
                d.bus_id()
            )));
        };
        let offered = has(o.features, balloon::F_PAGE_REPORTING);
        match (said, offered) {
            (Some(true), false) => {
                return Err(Outcome::mismatch(
                    &format!("{} balloon: PAGE_REPORTING (balloon= says :report)", o.bus),
                    "offered",
                    "not offered",
                ))
            }
            (Some(false), true) => {
                return Err(Outcome::mismatch(
                    &format!(
                        "{} balloon: PAGE_REPORTING (balloon= has no :report)",
                        o.bus
                    ),
                    "not offered",
                    "offered",
                ))
            }
            (None, false) => {
                return Err(Outcome::skip(
                    "the balloon does not offer PAGE_REPORTING (QEMU's free-page-reporting=on)",
                ))
            }
            _ => {}
        }
        let mut ranges: Vec<Vec<Rc<DmaMemory>>> = Vec::new();
        for shape in REPORT_RANGES {
            let chain: Vec<Rc<DmaMemory>> = shape
                .iter()
                .map(|&n| {
                    let mem = Rc::new(DmaMemory::new(n * PAGE as usize));
                    fill(&mem, seed);
                    mem
                })
                .collect();
            ranges.push(chain);
        }
        let bus = o.bus;
        let t = &mut o.t;
        let i = balloon::queue_index(o.features, BalloonQueue::Reporting).expect("offered");
        let q = &mut o.queues[usize::from(i)];
        let mut tokens = Vec::new();
        for (k, chain) in ranges.iter().enumerate() {
            let bufs: Vec<DmaBuffer<'_>> = chain
                .iter()
                .map(|mem| DmaBuffer {
                    mem,
                    offset: 0,
                    len: mem.len() as u32,
                    device_writable: true,
                })
                .collect();
            let token = q.add(&bufs, false).map_err(|e| {
                Outcome::mismatch(
                    &format!("{} balloon queue {}: report {}", bus, i, k),
                    "made available",
                    format!("{}", e).as_str(),
                )
            })?;
            tokens.push((token, chain.iter().map(|m| m.len() as u32).sum::<u32>()));
        }
        q.kick(t).map_err(|e| {
            Outcome::mismatch(
                &format!("{} balloon queue {}: kick", bus, i),
                "notified",
                format!("{}", e).as_str(),
            )
        })?;
        let mut back = 0;
        while back < tokens.len() {
            let u = q.wait_used(t).map_err(|e| {
                Outcome::mismatch(
                    &format!(
                        "{} balloon queue {}: free page reports used ({} of {} back)",
                        bus,
                        i,
                        back,
                        tokens.len()
                    ),
                    "every report used",
                    format!("{}", e).as_str(),
                )
            })?;
            let Some(k) = tokens.iter().position(|&(tok, _)| tok == u.token) else {
                return Err(Outcome::mismatch(
                    &format!("{} balloon queue {}: used token", bus, i),
                    "a report in flight",
                    u.token,
                ));
            };
            let (_, len) = tokens[k];
            if u.len > len {
                return Err(Outcome::mismatch(
                    &format!("{} balloon queue {}: used length of report {}", bus, i, k),
                    format!("at most {}", len).as_str(),
                    u.len,
                ));
            }
            tokens[k].0 = u16::MAX;
            back += 1;
        }
        let pages: usize = REPORT_RANGES.iter().flat_map(|s| s.iter()).sum();
        let mut note = format!(
            "{} reports of {} pages, each used",
            REPORT_RANGES.len(),
            pages
        );
        if under_qemu {
            for mem in ranges.iter().flatten() {
                if let Some((p, got)) = first_kept_page(mem) {
                    return Err(Outcome::mismatch(
                        &format!(
                            "{} balloon: reported page {} afterwards (QEMU discards reported pages)",
                            bus,
                            Hex(mem.addr() + p as u64 * PAGE)
                        ),
                        "zeros",
                        Hex(got),
                    ));
                }
            }
            note.push_str(", each page read back zero (discarded by the host)");
        }
        for mem in ranges.iter().flatten() {
            writes_back(mem, seed, bus)?;
        }
        let _ = o.t.reset();
        Ok(note)
    })();
    match r {
        Ok(note) => Outcome::PassNote(note),
        Err(o) => o,
    }
}

/// `balloon.hint`: free page hinting (`free-page-hint=on`). QEMU asks for
/// hints only while it migrates (its precopy notifier sets a command id
/// after each dirty-bitmap sync): what is checked without a migration is
/// the offer and the free page queue.
pub fn hint(m: &mut Machine) -> Outcome {
    let (_, d) = match configured(
        m,
        |c| c.hint,
        "no balloon=BUS:hint (QEMU's free-page-hint=on, with an iothread)",
    ) {
        Ok(x) => x,
        Err(o) => return o,
    };
    let r = (|| -> Result<(), Outcome> {
        let Some(mut o) = open(d, 2)? else {
            return Err(Outcome::fail(&format!(
                "{} balloon: revision 2 refused",
                d.bus_id()
            )));
        };
        if !has(o.features, balloon::F_FREE_PAGE_HINT) {
            return Err(Outcome::mismatch(
                &format!("{} balloon: FREE_PAGE_HINT (balloon= says :hint)", o.bus),
                "offered",
                "not offered",
            ));
        }
        if o.queue(BalloonQueue::FreePage).is_none() {
            return Err(Outcome::fail(&format!(
                "{} balloon: no free page queue",
                o.bus
            )));
        }
        let _ = o.t.reset();
        Ok(())
    })();
    match r {
        Ok(()) => Outcome::skip(
            "FREE_PAGE_HINT offered and its queue set up, but QEMU asks for hints only while it migrates (precopy), which no scenario drives: no hint was sent",
        ),
        Err(o) => o,
    }
}
