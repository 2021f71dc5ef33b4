//! virtio-gpu control traffic for the stress engine: resources living
//! their whole life in lanes. Request `n` belongs to lane `n % lanes`;
//! each lane runs create (2D, a seeded size), attach backing (its own
//! pages, cut into entries), transfer, flush, detach, unref, then a
//! second unref in lane 0 (which must be refused with
//! ERR_INVALID_RESOURCE_ID: one refusal a lifecycle keeps QEMU's
//! guest-error log short) and a display-info request in the others (a
//! longer answer), then again with a new resource id. Requests of one lane conflict, so each lane's
//! commands reach the device in order while the lanes interleave. Every
//! command is fenced with its number, which the answer must echo. Pure,
//! host-tested.

use crate::disk::mix;
use crate::format;
use crate::virtio::devices::gpu::{
    self as dev, answer_name, command_name, decode_answer, Answer, Command, Header, Rect,
    FLAG_FENCE,
};
use crate::virtio::stress::{Plan, Rng, Workload};
use alloc::string::String;
use alloc::vec::Vec;

/// The steps of a lane, in order.
pub const STEPS: u64 = 7;
/// The largest side of a stress resource (its backing is a lane's).
pub const MAX_SIDE: u32 = 64;
/// Bytes of backing a lane needs.
pub const LANE_BYTES: usize = (MAX_SIDE * MAX_SIDE * 4) as usize;
/// Resource ids from here (clear of the other gpu checks' own).
const ID_BASE: u32 = 0x1000;

/// One command of one lane's resource.
#[derive(Clone, Debug)]
pub struct Request {
    pub n: u64,
    pub lane: u32,
    pub step: u64,
    pub id: u32,
    pub width: u32,
    pub height: u32,
    pub rect: Rect,
    /// Backing entries: bytes per entry.
    pub chunk: u32,
}

/// Resource lifecycles over `lanes`, each with `LANE_BYTES` of backing at
/// the addresses given (memory the device's held list keeps: the caller's
/// business).
pub struct Lifecycles {
    pub seed: u64,
    backing: Vec<u64>,
}

impl Lifecycles {
    pub fn new(seed: u64, backing: Vec<u64>) -> Self {
        Lifecycles { seed, backing }
    }

    pub fn lanes(&self) -> u64 {
        self.backing.len().max(1) as u64
    }

    /// Requests for `generations` whole lifecycles in every lane.
    pub fn requests(&self, generations: u64) -> u64 {
        self.lanes() * STEPS * generations
    }

    fn command(&self, r: &Request) -> Command {
        let h = |kind| Header::fenced(kind, r.n);
        match r.step {
            0 => dev::resource_create_2d(
                h(dev::CMD_RESOURCE_CREATE_2D),
                r.id,
                dev::FORMAT_B8G8R8X8,
                r.width,
                r.height,
            ),
            1 => {
                let base = self.backing[r.lane as usize];
                let len = r.width * r.height * 4;
                let entries: Vec<(u64, u32)> = (0..len)
                    .step_by(r.chunk as usize)
                    .map(|at| (base + u64::from(at), (len - at).min(r.chunk)))
                    .collect();
                dev::resource_attach_backing(h(dev::CMD_RESOURCE_ATTACH_BACKING), r.id, &entries)
            }
            2 => dev::transfer_to_host_2d(
                h(dev::CMD_TRANSFER_TO_HOST_2D),
                r.rect,
                u64::from(r.rect.y * r.width * 4 + r.rect.x * 4),
                r.id,
            ),
            3 => dev::resource_flush(h(dev::CMD_RESOURCE_FLUSH), r.rect, r.id),
            4 => dev::resource_detach_backing(h(dev::CMD_RESOURCE_DETACH_BACKING), r.id),
            6 if r.lane != 0 => dev::get_display_info(h(dev::CMD_GET_DISPLAY_INFO)),
            _ => dev::resource_unref(h(dev::CMD_RESOURCE_UNREF), r.id),
        }
    }

    /// The answer type request `r` must get.
    pub fn expected(r: &Request) -> u32 {
        match (r.step, r.lane) {
            (6, 0) => dev::RESP_ERR_INVALID_RESOURCE_ID,
            (6, _) => dev::RESP_OK_DISPLAY_INFO,
            _ => dev::RESP_OK_NODATA,
        }
    }
}

impl Workload for Lifecycles {
    type Req = Request;

    fn plan(&mut self, n: u64, rng: &mut Rng) -> Plan<Request> {
        let lanes = self.lanes();
        let lane = (n % lanes) as u32;
        let k = n / lanes;
        let (generation, step) = (k / STEPS, k % STEPS);
        // The size is the lifecycle's, the same for each of its steps.
        let v = mix(self.seed ^ 0x6770_7573_0000_0000 ^ (generation << 16 | u64::from(lane)));
        let width = 1 + (v % u64::from(MAX_SIDE)) as u32;
        let height = 1 + ((v >> 16) % u64::from(MAX_SIDE)) as u32;
        let chunk = [4096u32, 1024, 64, LANE_BYTES as u32][((v >> 32) % 4) as usize];
        let x = rng.below(u64::from(width)) as u32;
        let y = rng.below(u64::from(height)) as u32;
        let rect = Rect {
            x,
            y,
            width: 1 + rng.below(u64::from(width - x)) as u32,
            height: 1 + rng.below(u64::from(height - y)) as u32,
        };
        let id = ID_BASE
            .wrapping_add(lane)
            .wrapping_add((generation as u32).wrapping_mul(lanes as u32))
            .max(1);
        let req = Request {
            n,
            lane,
            step,
            id,
            width,
            height,
            rect,
            chunk,
        };
        let c = self.command(&req);
        let readable = c.0.len() as u32;
        Plan {
            req,
            readable,
            writable: c.ok_answer().1 as u32,
            cuts: [0, 0],
            whole: [(0, 0); 2],
        }
    }

    fn conflicts(&self, a: &Request, b: &Request) -> bool {
        a.lane == b.lane
    }

    fn fill(&mut self, req: &Request, readable: &mut [u8]) {
        readable.copy_from_slice(&self.command(req).0);
    }

    fn check(&mut self, req: &Request, written: &[u8], used_len: u32) -> Result<u64, String> {
        let c = self.command(req);
        let what = || {
            format!(
                "lane {} step {} {} of resource {} ({}x{})",
                req.lane,
                req.step,
                command_name(c.kind()),
                req.id,
                req.width,
                req.height
            )
        };
        let (h, answer) = decode_answer(c.kind(), written, used_len)
            .map_err(|e| format!("{}: {}", what().as_str(), e))?;
        let want = Lifecycles::expected(req);
        let got = match answer {
            Answer::Error(k) => k,
            _ => h.kind,
        };
        if got != want {
            return Err(format!(
                "{}: answered {}, expected {}",
                what().as_str(),
                answer_name(got),
                answer_name(want)
            ));
        }
        if h.flags & FLAG_FENCE == 0 || h.fence_id != req.n {
            return Err(format!(
                "{}: the answer's fence flag {} and id {} (the command's fence id {} echoed expected)",
                what().as_str(),
                h.flags & FLAG_FENCE,
                h.fence_id,
                req.n
            ));
        }
        Ok(u64::from(used_len) + c.0.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(w: &mut Lifecycles, n: u64) -> Plan<Request> {
        let mut rng = Rng::for_request(3, 1, n);
        w.plan(n, &mut rng)
    }

    fn nodata(kind: u32, fence: u64) -> Vec<u8> {
        let mut h = Header::fenced(kind, fence);
        h.kind = kind;
        h.encode().to_vec()
    }

    #[test]
    fn lanes_walk_their_steps_with_one_resource_each() {
        let mut w = Lifecycles::new(9, alloc::vec![0x10000, 0x20000]);
        assert_eq!(w.requests(3), 42);
        let plans: Vec<Plan<Request>> = (0..28).map(|n| planned(&mut w, n)).collect();
        for (n, p) in plans.iter().enumerate() {
            let r = &p.req;
            assert_eq!((r.lane, r.step), ((n % 2) as u32, (n as u64 / 2) % STEPS));
            assert!(r.rect.x + r.rect.width <= r.width && r.rect.y + r.rect.height <= r.height);
            let display = r.step == 6 && r.lane != 0;
            assert_eq!(p.writable, if display { 408 } else { 24 });
            let mut b = alloc::vec![0u8; p.readable as usize];
            w.fill(r, &mut b);
            assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), n as u64);
        }
        // One resource per lifecycle, a new one for the next.
        assert_eq!(plans[0].req.id, plans[12].req.id);
        assert_ne!(plans[0].req.id, plans[1].req.id);
        assert_ne!(plans[0].req.id, plans[14].req.id);
        assert!(w.conflicts(&plans[0].req, &plans[2].req));
        assert!(!w.conflicts(&plans[0].req, &plans[1].req));
        // The attach names the lane's own pages, all of the resource.
        let attach = &plans[2].req;
        let mut b = alloc::vec![0u8; plans[2].readable as usize];
        w.fill(attach, &mut b);
        let entries = u32::from_le_bytes(b[28..32].try_into().unwrap()) as usize;
        assert_eq!(b.len(), 32 + 16 * entries);
        assert_eq!(u64::from_le_bytes(b[32..40].try_into().unwrap()), 0x10000);
        let total: u32 = (0..entries)
            .map(|i| u32::from_le_bytes(b[40 + 16 * i..44 + 16 * i].try_into().unwrap()))
            .sum();
        assert_eq!(total, attach.width * attach.height * 4);
    }

    #[test]
    fn answers_are_held_to_their_step_and_fence() {
        let mut w = Lifecycles::new(9, alloc::vec![0x10000]);
        let create = planned(&mut w, 0).req;
        let ok = nodata(dev::RESP_OK_NODATA, 0);
        assert_eq!(w.check(&create, &ok, 24), Ok(24 + 40));
        let refused = nodata(dev::RESP_ERR_INVALID_RESOURCE_ID, 0);
        let e = w.check(&create, &refused, 24).unwrap_err();
        assert!(
            e.contains("ERR_INVALID_RESOURCE_ID, expected OK_NODATA"),
            "{e}"
        );
        let again = planned(&mut w, 6).req;
        assert_eq!((again.step, again.lane), (6, 0));
        let refused = nodata(dev::RESP_ERR_INVALID_RESOURCE_ID, 6);
        assert!(w.check(&again, &refused, 24).is_ok());
        let e = w
            .check(&again, &nodata(dev::RESP_OK_NODATA, 6), 24)
            .unwrap_err();
        assert!(e.contains("expected ERR_INVALID_RESOURCE_ID"), "{e}");
        let e = w
            .check(&create, &nodata(dev::RESP_OK_NODATA, 5), 24)
            .unwrap_err();
        assert!(e.contains("fence"), "{e}");
        let e = w.check(&create, &ok, 20).unwrap_err();
        assert!(e.contains("less than a header"), "{e}");
        // The other lanes ask for the display info there.
        let mut w = Lifecycles::new(9, alloc::vec![0x10000, 0x20000]);
        let info = planned(&mut w, 13).req;
        assert_eq!((info.step, info.lane), (6, 1));
        let mut answer = alloc::vec![0u8; 408];
        answer[..24].copy_from_slice(&nodata(dev::RESP_OK_DISPLAY_INFO, 13));
        assert_eq!(w.check(&info, &answer, 408), Ok(408 + 24));
        let e = w
            .check(&info, &nodata(dev::RESP_OK_NODATA, 13), 24)
            .unwrap_err();
        assert!(e.contains("expected"), "{e}");
    }
}
