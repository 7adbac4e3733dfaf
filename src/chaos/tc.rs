//! The bytes of netem and tbf `TCA_OPTIONS`, built from specs and read back from kernel dumps.
//! Pure: no socket here. Layouts and units follow docs/chaos.md (research notes, section 4).

use super::dist;
use super::spec::{NetemSpec, TbfSpec};

/// One psched tick is 64 ns (PSCHED_SHIFT 6); `tc` computes the same from /proc/net/psched.
const PSCHED_SHIFT: u32 = 6;

/// A probability in percent (0..=100) as the kernel wants it: scaled to 0..=u32::MAX.
pub fn percent_to_u32(percent: f64) -> u32 {
    (percent.clamp(0.0, 100.0) / 100.0 * u32::MAX as f64).round() as u32
}

pub const TCA_KIND: u16 = 1;
pub const TCA_OPTIONS: u16 = 2;
pub const NLA_F_NESTED: u16 = 0x8000;
pub const NLA_TYPE_MASK: u16 = !(0x8000 | 0x4000);

const TCA_NETEM_CORR: u16 = 1;
const TCA_NETEM_DELAY_DIST: u16 = 2;
const TCA_NETEM_REORDER: u16 = 3;
const TCA_NETEM_CORRUPT: u16 = 4;
const TCA_NETEM_LOSS: u16 = 5;
const TCA_NETEM_RATE: u16 = 6;
const TCA_NETEM_RATE64: u16 = 8;
const TCA_NETEM_LATENCY64: u16 = 10;
const TCA_NETEM_JITTER64: u16 = 11;
const NETEM_LOSS_GE: u16 = 2;
const NETEM_QOPT_LEN: usize = 24;
const DEFAULT_NETEM_LIMIT: u32 = 1000;

const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RTAB: u16 = 2;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
/// iproute2's default MTU for the rate table: 2047 gives cell_log 3.
const TBF_RTAB_MTU: u32 = 2047;
const TC_LINKLAYER_ETHERNET: u8 = 1;

pub fn ns_to_ticks(ns: u64) -> u32 {
    (ns >> PSCHED_SHIFT).min(u32::MAX as u64) as u32
}

/// One netlink attribute: header, payload, padding to 4 bytes.
pub fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + payload.len() + 3);
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

fn u32s(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// netem's TCA_OPTIONS payload: the 24-byte `tc_netem_qopt`, then netem attributes.
///
/// Both delay forms are written (ticks in the qopt for kernels before 4.15, LATENCY64/JITTER64
/// for the rest), and every optional attribute is sent even when zero, so a replace never
/// inherits a previous corrupt/reorder/rate.
pub fn netem_options(spec: &NetemSpec) -> Vec<u8> {
    let delay_ns = spec.delay.map_or(0, |d| d.get().as_nanos() as u64);
    let jitter_ns = spec.jitter.map_or(0, |d| d.get().as_nanos() as u64);
    let reordering = spec.reorder > 0.0 || spec.gap > 0;
    let gap = match (reordering, spec.gap) {
        (true, 0) => 1,
        (_, gap) => gap,
    };
    let loss = match spec.loss_gemodel {
        Some(_) => 0,
        None => percent_to_u32(spec.loss),
    };
    let mut out = u32s(&[
        ns_to_ticks(delay_ns),
        spec.limit.unwrap_or(DEFAULT_NETEM_LIMIT),
        loss,
        gap,
        percent_to_u32(spec.duplicate),
        ns_to_ticks(jitter_ns),
    ]);
    out.extend(nla(
        TCA_NETEM_CORR,
        &u32s(&[
            percent_to_u32(spec.delay_correlation),
            percent_to_u32(spec.loss_correlation),
            percent_to_u32(spec.duplicate_correlation),
        ]),
    ));
    out.extend(nla(
        TCA_NETEM_REORDER,
        &u32s(&[
            percent_to_u32(spec.reorder),
            percent_to_u32(spec.reorder_correlation),
        ]),
    ));
    out.extend(nla(
        TCA_NETEM_CORRUPT,
        &u32s(&[
            percent_to_u32(spec.corrupt),
            percent_to_u32(spec.corrupt_correlation),
        ]),
    ));
    let rate = spec.rate.map_or(0, |r| r.bytes_per_sec);
    let mut rate_struct = u32s(&[rate.min(u32::MAX as u64) as u32]);
    rate_struct.extend_from_slice(&[0; 12]); // packet_overhead, cell_size, cell_overhead
    out.extend(nla(TCA_NETEM_RATE, &rate_struct));
    if rate >= u32::MAX as u64 {
        out.extend(nla(TCA_NETEM_RATE64, &rate.to_ne_bytes()));
    }
    if let Some(ge) = spec.loss_gemodel {
        // The kernel wants h itself; iproute2's option is "1-h", so it sends UINT32_MAX - h.
        let model = u32s(&[
            percent_to_u32(ge.p),
            percent_to_u32(ge.r),
            u32::MAX - percent_to_u32(ge.h),
            percent_to_u32(ge.k),
        ]);
        out.extend(nla(
            TCA_NETEM_LOSS | NLA_F_NESTED,
            &nla(NETEM_LOSS_GE, &model),
        ));
    }
    if let Some(distribution) = spec.distribution {
        let table: Vec<u8> = dist::table(distribution)
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        out.extend(nla(TCA_NETEM_DELAY_DIST, &table));
    }
    out.extend(nla(TCA_NETEM_LATENCY64, &(delay_ns as i64).to_ne_bytes()));
    out.extend(nla(TCA_NETEM_JITTER64, &(jitter_ns as i64).to_ne_bytes()));
    out
}

fn tbf_cell_log() -> u8 {
    let mut cell_log = 0;
    while (TBF_RTAB_MTU >> cell_log) > 255 {
        cell_log += 1;
    }
    cell_log
}

/// Psched ticks to send `bytes` at `rate` bytes/s (iproute2 `tc_calc_xmittime`).
fn xmit_ticks(bytes: u64, rate: u64) -> u32 {
    // µs × 15.625 ticks/µs = bytes × 15_625_000 / rate
    ((bytes as u128 * 15_625_000) / rate.max(1) as u128).min(u32::MAX as u128) as u32
}

/// tbf's TCA_OPTIONS payload: a nest of PARMS, RTAB, BURST (and RATE64 above 4 GB/s).
pub fn tbf_options(spec: &TbfSpec) -> Vec<u8> {
    let rate = spec.rate.bytes_per_sec;
    let cell_log = tbf_cell_log();
    let mut parms = Vec::with_capacity(36);
    // struct tc_ratespec rate
    parms.push(cell_log);
    parms.push(TC_LINKLAYER_ETHERNET);
    parms.extend_from_slice(&0u16.to_ne_bytes()); // overhead
    parms.extend_from_slice(&(-1i16).to_ne_bytes()); // cell_align
    parms.extend_from_slice(&0u16.to_ne_bytes()); // mpu
    parms.extend_from_slice(&(rate.min(u32::MAX as u64) as u32).to_ne_bytes());
    parms.extend_from_slice(&[0; 12]); // no peak rate
    parms.extend(u32s(&[
        spec.limit.0.min(u32::MAX as u64) as u32,
        xmit_ticks(spec.burst.0, rate),
        0, // mtu: no peak bucket
    ]));
    let rtab: Vec<u32> = (0..256u64)
        .map(|i| xmit_ticks((i + 1) << cell_log, rate))
        .collect();
    let mut out = nla(TCA_TBF_PARMS, &parms);
    out.extend(nla(TCA_TBF_RTAB, &u32s(&rtab)));
    if rate >= u32::MAX as u64 {
        out.extend(nla(TCA_TBF_RATE64, &rate.to_ne_bytes()));
    }
    out.extend(nla(
        TCA_TBF_BURST,
        &(spec.burst.0.min(u32::MAX as u64) as u32).to_ne_bytes(),
    ));
    out
}

/// Attributes in `bytes` as (type without flags, payload).
pub fn attributes(bytes: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset + 4 <= bytes.len() {
        let length = u16::from_ne_bytes([bytes[offset], bytes[offset + 1]]) as usize;
        let kind = u16::from_ne_bytes([bytes[offset + 2], bytes[offset + 3]]) & NLA_TYPE_MASK;
        if length < 4 || offset + length > bytes.len() {
            break;
        }
        out.push((kind, &bytes[offset + 4..offset + length]));
        offset += (length + 3) & !3;
    }
    out
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// What differs between the qdisc we asked for and the one the kernel reports (after which
/// the qdisc is deleted again); the text goes into the experiment's log and the API's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadBack {
    #[error("netem parameters read back differ: sent {sent:02x?}, kernel has {dumped:02x?}")]
    NetemDiffers {
        sent: Option<Vec<u8>>,
        dumped: Option<Vec<u8>>,
    },
    /// (rate, limit, buffer) of each side.
    #[error(
        "tbf parameters read back differ: sent (rate, limit, buffer) {sent:?}, kernel has {got:?}"
    )]
    TbfDiffers {
        sent: Option<(u32, u32, u32)>,
        got: Option<(u32, u32, u32)>,
    },
    #[error("after the kernel's ACK the root qdisc is {found:?}, not our {kind}")]
    NotOurs { kind: String, found: Option<String> },
}

/// Compare what the kernel reports for our qdisc with what we asked; `Err` says what differs.
pub fn verify_options(kind: &str, sent: &[u8], dumped: &[u8]) -> Result<String, ReadBack> {
    match kind {
        "netem" => {
            let (sent_qopt, dumped_qopt) =
                (sent.get(..NETEM_QOPT_LEN), dumped.get(..NETEM_QOPT_LEN));
            if sent_qopt.is_none() || sent_qopt != dumped_qopt {
                return Err(ReadBack::NetemDiffers {
                    sent: sent_qopt.map(<[u8]>::to_vec),
                    dumped: dumped_qopt.map(<[u8]>::to_vec),
                });
            }
            let latency = attributes(&dumped[NETEM_QOPT_LEN..])
                .into_iter()
                .find(|(k, _)| *k == TCA_NETEM_LATENCY64)
                .and_then(|(_, v)| v.try_into().ok().map(i64::from_ne_bytes));
            Ok(match latency {
                Some(ns) => format!("netem verified (delay {} µs)", ns / 1000),
                None => "netem verified".into(),
            })
        }
        "tbf" => {
            let parms = |bytes: &[u8]| -> Option<(u32, u32, u32)> {
                let (_, p) = attributes(bytes)
                    .into_iter()
                    .find(|(k, _)| *k == TCA_TBF_PARMS)?;
                Some((read_u32(p, 8)?, read_u32(p, 24)?, read_u32(p, 28)?))
            };
            match (parms(sent), parms(dumped)) {
                (Some((rate, limit, buffer)), Some((got_rate, got_limit, got_buffer)))
                    if rate == got_rate
                        && limit == got_limit
                        && buffer.abs_diff(got_buffer) <= 1 =>
                {
                    Ok(format!(
                        "tbf verified (rate {got_rate} B/s, limit {got_limit} B, buffer {got_buffer} ticks)"
                    ))
                }
                (sent, got) => Err(ReadBack::TbfDiffers { sent, got }),
            }
        }
        other => Ok(format!("{other} present")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::spec::Distribution;
    use crate::units::{ByteSize, HumanDuration, Rate};

    #[test]
    fn percent_scaling_matches_iproute2() {
        // tc sends `loss 1%` as 0x028f5c29 (research notes 4.3).
        assert_eq!(percent_to_u32(1.0), 0x028f_5c29);
        assert_eq!(percent_to_u32(100.0), u32::MAX);
        assert_eq!(percent_to_u32(0.0), 0);
    }

    fn duration(text: &str) -> Option<HumanDuration> {
        Some(text.parse().unwrap())
    }

    /// `tc qdisc add ... netem delay 100ms 10ms loss 1%` as captured with strace (notes 4.3).
    #[test]
    fn netem_qopt_matches_tc_byte_for_byte() {
        let spec = NetemSpec {
            delay: duration("100ms"),
            jitter: duration("10ms"),
            loss: 1.0,
            ..Default::default()
        };
        let options = netem_options(&spec);
        let golden: [u8; 24] = [
            0x84, 0xd7, 0x17, 0x00, 0xe8, 0x03, 0x00, 0x00, 0x29, 0x5c, 0x8f, 0x02, 0, 0, 0, 0, 0,
            0, 0, 0, 0x5a, 0x62, 0x02, 0x00,
        ];
        assert_eq!(&options[..24], &golden);
        let attrs = attributes(&options[24..]);
        let find = |kind| attrs.iter().find(|(k, _)| *k == kind).unwrap().1;
        assert_eq!(find(TCA_NETEM_LATENCY64), 100_000_000i64.to_ne_bytes());
        assert_eq!(find(TCA_NETEM_JITTER64), 10_000_000i64.to_ne_bytes());
        // resent as zero so a replace never inherits them
        assert_eq!(find(TCA_NETEM_CORRUPT), [0u8; 8]);
        assert_eq!(find(TCA_NETEM_RATE), [0u8; 16]);
        assert!(verify_options("netem", &options, &options).is_ok());
    }

    #[test]
    fn netem_reorder_sets_gap_and_gemodel_is_nested() {
        let spec = NetemSpec {
            delay: duration("10ms"),
            reorder: 25.0,
            loss_gemodel: Some(crate::chaos::spec::GilbertElliott {
                p: 1.0,
                r: 10.0,
                h: 0.0,
                k: 0.0,
            }),
            distribution: Some(Distribution::Normal),
            jitter: duration("1ms"),
            ..Default::default()
        };
        let options = netem_options(&spec);
        assert_eq!(read_u32(&options, 12), Some(1), "gap defaults to 1");
        let raw_types: Vec<u16> = {
            let mut types = Vec::new();
            let mut at = 24;
            while at + 4 <= options.len() {
                let len = u16::from_ne_bytes([options[at], options[at + 1]]) as usize;
                types.push(u16::from_ne_bytes([options[at + 2], options[at + 3]]));
                at += (len + 3) & !3;
            }
            types
        };
        assert!(raw_types.contains(&(TCA_NETEM_LOSS | NLA_F_NESTED)));
        let dist = attributes(&options[24..])
            .into_iter()
            .find(|(k, _)| *k == TCA_NETEM_DELAY_DIST)
            .unwrap()
            .1;
        assert_eq!(dist.len(), dist::TABLE_LEN * 2);
    }

    /// `tc qdisc add ... tbf rate 8mbit burst 16kb limit 32kb` (notes 4.5).
    #[test]
    fn tbf_matches_tc() {
        let spec = TbfSpec {
            rate: "8mbit/s".parse::<Rate>().unwrap(),
            burst: ByteSize(16384),
            limit: ByteSize(32768),
            destinations: Vec::new(),
            protocol: None,
            direction: Default::default(),
        };
        let options = tbf_options(&spec);
        let attrs = attributes(&options);
        let parms = attrs[0].1;
        assert_eq!(attrs[0].0, TCA_TBF_PARMS);
        assert_eq!(parms.len(), 36);
        assert_eq!(parms[0], 3, "cell_log");
        assert_eq!(parms[1], 1, "linklayer ethernet");
        assert_eq!(i16::from_ne_bytes([parms[4], parms[5]]), -1, "cell_align");
        assert_eq!(read_u32(parms, 8), Some(1_000_000), "rate B/s");
        assert_eq!(read_u32(parms, 24), Some(32768), "limit");
        assert_eq!(read_u32(parms, 28), Some(256_000), "buffer ticks");
        let rtab = attrs[1].1;
        assert_eq!(attrs[1].0, TCA_TBF_RTAB);
        assert_eq!(rtab.len(), 1024);
        assert_eq!(read_u32(rtab, 0), Some(125));
        assert_eq!(read_u32(rtab, 4), Some(250));
        assert_eq!(read_u32(rtab, 8), Some(375));
        assert_eq!(attrs[2], (TCA_TBF_BURST, &16384u32.to_ne_bytes()[..]));
    }

    #[test]
    fn tbf_verify_tolerates_kernel_rounding_but_not_other_rates() {
        let spec = TbfSpec {
            rate: "1mbit/s".parse().unwrap(),
            burst: ByteSize(16384),
            limit: ByteSize(32768),
            destinations: Vec::new(),
            protocol: None,
            direction: Default::default(),
        };
        let sent = tbf_options(&spec);
        // the kernel dumps PARMS only, with cell_log zeroed and the buffer recomputed
        let mut parms = attributes(&sent)[0].1.to_vec();
        parms[0] = 0;
        let buffer = read_u32(&parms, 28).unwrap() + 1;
        parms[28..32].copy_from_slice(&buffer.to_ne_bytes());
        let dumped = nla(TCA_TBF_PARMS, &parms);
        assert!(verify_options("tbf", &sent, &dumped).is_ok());
        parms[8..12].copy_from_slice(&1u32.to_ne_bytes());
        let dumped = nla(TCA_TBF_PARMS, &parms);
        assert!(verify_options("tbf", &sent, &dumped)
            .unwrap_err()
            .to_string()
            .contains("differ"));
    }
}
