use super::math::{day_of, percentile, recompute, Change};
use super::rollup::{figures, load};
use super::*;
use crate::event::{Event, EventKind, ProbeState};
use crate::journal::{JournalStore, DATABASE_FILE};

const H: i64 = 3_600_000;
const M: i64 = 60_000;
/// Midnight of a UTC day.
const T0: i64 = 20_000 * DAY_MS;

fn transition(probe: &str, at: i64, class: Class) -> Event {
    let to = match class {
        Class::Up => ProbeState::Up,
        Class::Down => ProbeState::Down,
        Class::Unknown => ProbeState::Unknown,
    };
    Event {
        at: Timestamp(at),
        kind: EventKind::ProbeTransition {
            probe: probe.into(),
            from: ProbeState::Unknown,
            to,
            reason: None,
            status_code: None,
            latency_ms: None,
            recoveries_total: 0,
        },
    }
}

fn stopping(at: i64) -> Event {
    Event {
        at: Timestamp(at),
        kind: EventKind::DaemonStopping {
            reason: "test".into(),
        },
    }
}

fn all(from: i64, to: i64) -> Exclusion {
    Exclusion {
        probe: None,
        from: Timestamp(from),
        to: Timestamp(to),
    }
}

/// The figures the rollups give for probe `p` after `events` were journaled.
fn through_rollups(
    events: Vec<Event>,
    now: i64,
    window: Span,
    exclusions: &[Exclusion],
) -> Vec<(String, Figures)> {
    let dir = tempfile::tempdir().unwrap();
    let mut store = JournalStore::open(&dir.path().join(DATABASE_FILE)).unwrap();
    store.append(events).unwrap();
    let rows = load(store.connection(), None, day_of(window.from), day_of(now)).unwrap();
    rows.iter()
        .map(|rows| {
            let excluded = math::merged_exclusions(&rows.probe, exclusions);
            (rows.probe.clone(), figures(rows, now, window, &excluded))
        })
        .collect()
}

struct Case {
    name: &'static str,
    changes: &'static [(i64, Class)],
    now: i64,
    window: (i64, i64),
    exclusions: Vec<Exclusion>,
    /// up, down, unknown, excluded (ms)
    times: (i64, i64, i64, i64),
    incidents: u64,
    ongoing: u64,
    ttr: (Option<i64>, Option<i64>),
}

fn cases() -> Vec<Case> {
    use Class::*;
    vec![
        Case {
            name: "up all day",
            changes: &[(T0, Up)],
            now: T0 + 2 * DAY_MS,
            window: (T0 + DAY_MS, T0 + 2 * DAY_MS),
            exclusions: vec![],
            times: (DAY_MS, 0, 0, 0),
            incidents: 0,
            ongoing: 0,
            ttr: (None, None),
        },
        Case {
            name: "outage across midnight",
            changes: &[(T0, Up), (T0 + DAY_MS - H, Down), (T0 + DAY_MS + H, Up)],
            now: T0 + 2 * DAY_MS,
            window: (T0, T0 + 2 * DAY_MS),
            exclusions: vec![],
            times: (2 * DAY_MS - 2 * H, 2 * H, 0, 0),
            incidents: 1,
            ongoing: 0,
            ttr: (Some(2 * H), Some(2 * H)),
        },
        Case {
            name: "window edges inside the outage; the incident began before the window",
            changes: &[(T0, Up), (T0 + DAY_MS - H, Down), (T0 + DAY_MS + H, Up)],
            now: T0 + 2 * DAY_MS,
            window: (T0 + DAY_MS - 30 * M, T0 + DAY_MS + 30 * M),
            exclusions: vec![],
            times: (0, H, 0, 0),
            incidents: 0,
            ongoing: 0,
            ttr: (None, None),
        },
        Case {
            name: "no data before the first transition",
            changes: &[(T0 + 12 * H, Up)],
            now: T0 + DAY_MS,
            window: (T0, T0 + DAY_MS),
            exclusions: vec![],
            times: (12 * H, 0, 12 * H, 0),
            incidents: 0,
            ongoing: 0,
            ttr: (None, None),
        },
        Case {
            name: "sentineld stopped for six hours (unknown), a day later up again",
            changes: &[(T0, Up), (T0 + 6 * H, Unknown), (T0 + 12 * H, Up)],
            now: T0 + 2 * DAY_MS,
            window: (T0, T0 + 2 * DAY_MS),
            exclusions: vec![],
            times: (2 * DAY_MS - 6 * H, 0, 6 * H, 0),
            incidents: 0,
            ongoing: 0,
            ttr: (None, None),
        },
        Case {
            name: "overlapping exclusions swallow an outage and its incident",
            changes: &[(T0, Up), (T0 + 2 * H, Down), (T0 + 4 * H, Up)],
            now: T0 + DAY_MS,
            window: (T0, T0 + DAY_MS),
            exclusions: vec![
                all(T0 + H, T0 + 3 * H),
                all(T0 + 2 * H + 30 * M, T0 + 5 * H),
            ],
            times: (20 * H, 0, 0, 4 * H),
            incidents: 0,
            ongoing: 0,
            ttr: (None, None),
        },
        Case {
            name: "an exclusion of another probe changes nothing",
            changes: &[(T0, Up), (T0 + 2 * H, Down), (T0 + 4 * H, Up)],
            now: T0 + DAY_MS,
            window: (T0, T0 + DAY_MS),
            exclusions: vec![Exclusion {
                probe: Some("other".into()),
                from: Timestamp(T0),
                to: Timestamp(T0 + DAY_MS),
            }],
            times: (22 * H, 2 * H, 0, 0),
            incidents: 1,
            ongoing: 0,
            ttr: (Some(2 * H), Some(2 * H)),
        },
        Case {
            name: "an exclusion reaching past the window counts only inside it",
            changes: &[(T0, Up)],
            now: T0 + 2 * DAY_MS,
            window: (T0 + DAY_MS, T0 + 2 * DAY_MS),
            exclusions: vec![all(T0 + 20 * H, T0 + DAY_MS + 2 * H)],
            times: (22 * H, 0, 0, 2 * H),
            incidents: 0,
            ongoing: 0,
            ttr: (None, None),
        },
        Case {
            name: "ongoing incident",
            changes: &[(T0, Up), (T0 + 20 * H, Down)],
            now: T0 + DAY_MS,
            window: (T0, T0 + DAY_MS),
            exclusions: vec![],
            times: (20 * H, 4 * H, 0, 0),
            incidents: 1,
            ongoing: 1,
            ttr: (None, None),
        },
        Case {
            name: "unknown inside an incident: one incident, recovery time spans it",
            changes: &[
                (T0, Down),
                (T0 + H, Unknown),
                (T0 + 2 * H, Down),
                (T0 + 3 * H, Up),
            ],
            now: T0 + 4 * H,
            window: (T0, T0 + 4 * H),
            exclusions: vec![],
            times: (H, 2 * H, H, 0),
            incidents: 1,
            ongoing: 0,
            ttr: (Some(3 * H), Some(3 * H)),
        },
        Case {
            name: "three incidents over three days: median and p95",
            changes: &[
                (T0, Up),
                (T0 + H, Down),
                (T0 + 2 * H, Up),
                (T0 + DAY_MS, Down),
                (T0 + DAY_MS + 3 * H, Up),
                (T0 + 2 * DAY_MS + H, Down),
                (T0 + 2 * DAY_MS + 3 * H, Up),
            ],
            now: T0 + 3 * DAY_MS,
            window: (T0, T0 + 3 * DAY_MS),
            exclusions: vec![],
            times: (3 * DAY_MS - 6 * H, 6 * H, 0, 0),
            incidents: 3,
            ongoing: 0,
            ttr: (Some(2 * H), Some(3 * H)),
        },
        Case {
            name: "a clock stepping back counts the change at the open span's start",
            changes: &[(T0, Up), (T0 + 2 * H, Down), (T0 + H, Up)],
            now: T0 + 3 * H,
            window: (T0, T0 + 3 * H),
            exclusions: vec![],
            times: (3 * H, 0, 0, 0),
            incidents: 1,
            ongoing: 0,
            ttr: (Some(0), Some(0)),
        },
        Case {
            name: "a span of days with no transition, read from the open span",
            changes: &[(T0 + 5 * H, Down)],
            now: T0 + 10 * DAY_MS,
            window: (T0 + 3 * DAY_MS, T0 + 10 * DAY_MS),
            exclusions: vec![],
            times: (0, 7 * DAY_MS, 0, 0),
            incidents: 0,
            ongoing: 0,
            ttr: (None, None),
        },
    ]
}

#[test]
fn availability_table_full_recomputation_and_rollups_agree() {
    for case in cases() {
        let window = Span {
            from: case.window.0,
            to: case.window.1,
        };
        let changes: Vec<Change> = case
            .changes
            .iter()
            .map(|&(at, class)| Change { at, class })
            .collect();
        let excluded = math::merged_exclusions("p", &case.exclusions);
        let want = recompute(&changes, case.now, window, &excluded);
        let (up, down, unknown, excl) = case.times;
        assert_eq!(
            (want.up_ms, want.down_ms, want.unknown_ms, want.excluded_ms),
            (up, down, unknown, excl),
            "{}: times",
            case.name
        );
        assert_eq!(
            (want.incidents, want.ongoing),
            (case.incidents, case.ongoing),
            "{}: incidents",
            case.name
        );
        assert_eq!(
            (want.ttr_median_ms, want.ttr_p95_ms),
            case.ttr,
            "{}: recovery",
            case.name
        );
        assert_eq!(want.window_ms, window.len(), "{}", case.name);
        let known = up + down;
        assert_eq!(
            want.availability,
            (known > 0).then(|| up as f64 / known as f64),
            "{}",
            case.name
        );
        let events = case
            .changes
            .iter()
            .map(|&(at, class)| transition("p", at, class))
            .collect();
        let got = through_rollups(events, case.now, window, &case.exclusions);
        assert_eq!(got, vec![("p".to_string(), want)], "{}: rollups", case.name);
    }
}

#[test]
fn no_data_at_all_is_no_availability() {
    let window = Span {
        from: 0,
        to: DAY_MS,
    };
    let figures = recompute(&[], DAY_MS, window, &[]);
    assert_eq!(figures.availability, None);
    assert_eq!(figures.unknown_ms, DAY_MS);
}

#[test]
fn states_count_as_documented() {
    let table = [
        (ProbeState::Unknown, Class::Unknown),
        (ProbeState::Up, Class::Up),
        (ProbeState::Failing, Class::Up),
        (ProbeState::Down, Class::Down),
        (ProbeState::Recovering, Class::Down),
    ];
    for (state, class) in table {
        assert_eq!(Class::of(state), class, "{state:?}");
    }
}

#[test]
fn percentiles_are_nearest_rank() {
    let twenty: Vec<i64> = (1..=20).collect();
    let table: &[(&[i64], u32, Option<i64>)] = &[
        (&[], 50, None),
        (&[7], 50, Some(7)),
        (&[7], 95, Some(7)),
        (&[1, 2], 50, Some(1)),
        (&[1, 2, 3], 50, Some(2)),
        (&twenty, 50, Some(10)),
        (&twenty, 95, Some(19)),
        (&twenty, 100, Some(20)),
    ];
    for (values, p, want) in table {
        assert_eq!(percentile(values, *p), *want, "{values:?} p{p}");
    }
}

/// splitmix64, so a failure prints a seed that reproduces it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

/// Random journals (three probes, transitions minutes to days apart, daemon stops, batches of
/// any size): for random windows and exclusions, the rollups give exactly what a full
/// recomputation from the transitions gives.
#[test]
fn rollups_equal_a_full_recomputation_over_random_journals() {
    const PROBES: [&str; 3] = ["a", "b", "c"];
    for seed in 0..60u64 {
        let mut rng = Rng(seed);
        let mut at = T0 + rng.below(DAY_MS as u64);
        let mut events = Vec::new();
        let mut changes: Vec<Vec<Change>> = vec![Vec::new(); PROBES.len()];
        for _ in 0..(20 + rng.below(120)) {
            at += match rng.below(4) {
                0 => 0,
                1 => rng.below(10 * M as u64),
                2 => rng.below(6 * H as u64),
                _ => rng.below(3 * DAY_MS as u64),
            };
            if rng.below(15) == 0 {
                events.push(stopping(at));
                for probe in &mut changes {
                    if !probe.is_empty() {
                        probe.push(Change {
                            at,
                            class: Class::Unknown,
                        });
                    }
                }
                continue;
            }
            let probe = rng.below(PROBES.len() as u64) as usize;
            let class = match rng.below(5) {
                0 => Class::Unknown,
                1 | 2 => Class::Down,
                _ => Class::Up,
            };
            events.push(transition(PROBES[probe], at, class));
            changes[probe].push(Change { at, class });
        }
        let now = at + rng.below(2 * DAY_MS as u64);
        let dir = tempfile::tempdir().unwrap();
        let mut store = JournalStore::open(&dir.path().join(DATABASE_FILE)).unwrap();
        let mut rest = events.as_slice();
        while !rest.is_empty() {
            let take = (1 + rng.below(40) as usize).min(rest.len());
            store.append(rest[..take].to_vec()).unwrap();
            rest = &rest[take..];
        }
        for _ in 0..8 {
            let from = T0 - DAY_MS + rng.below((now - T0 + 2 * DAY_MS) as u64);
            let to = (from + rng.below(20 * DAY_MS as u64)).min(now);
            let window = Span { from, to };
            let exclusions: Vec<Exclusion> = (0..rng.below(4))
                .map(|_| {
                    let start = T0 + rng.below((now - T0 + 1) as u64);
                    Exclusion {
                        probe: match rng.below(3) {
                            0 => None,
                            n => Some(PROBES[n as usize].to_string()),
                        },
                        from: Timestamp(start),
                        to: Timestamp(start + rng.below(2 * DAY_MS as u64)),
                    }
                })
                .collect();
            let rows = load(store.connection(), None, day_of(from), day_of(now)).unwrap();
            for rows in &rows {
                let index = PROBES.iter().position(|p| *p == rows.probe).unwrap();
                let excluded = math::merged_exclusions(&rows.probe, &exclusions);
                let got = figures(rows, now, window, &excluded);
                let want = recompute(&changes[index], now, window, &excluded);
                assert_eq!(
                    got, want,
                    "seed {seed}, probe {}, window {window:?}, exclusions {exclusions:?}",
                    rows.probe
                );
            }
            let seen = changes.iter().filter(|c| !c.is_empty()).count();
            assert_eq!(rows.len(), seen, "seed {seed}");
        }
    }
}

#[test]
fn report_has_the_four_windows_and_one_since_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = JournalStore::open(&dir.path().join(DATABASE_FILE)).unwrap();
    store
        .append(vec![
            transition("web", T0, Class::Up),
            transition("db", T0, Class::Up),
            transition("web", T0 + 100 * DAY_MS - 2 * H, Class::Down),
            transition("web", T0 + 100 * DAY_MS - H, Class::Up),
        ])
        .unwrap();
    let now = Timestamp(T0 + 100 * DAY_MS - 30 * M);
    let report = report_from(store.connection(), now, &UptimeRequest::default(), &[]).unwrap();
    let names: Vec<&str> = report.windows.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["24h", "7d", "30d", "90d"]);
    assert_eq!(report.probes.len(), 2);
    let web = &report.probes[1];
    assert_eq!(web.probe, "web");
    assert_eq!(web.windows[0].figures.down_ms, H);
    assert_eq!(web.windows[0].figures.incidents, 1);
    let json = serde_json::to_value(&report).unwrap();
    for field in [
        "availability",
        "window_ms",
        "up_ms",
        "down_ms",
        "unknown_ms",
        "excluded_ms",
        "incidents",
        "ongoing",
        "ttr_median_ms",
        "ttr_p95_ms",
        "window",
    ] {
        assert!(
            json["probes"][1]["windows"][0].get(field).is_some(),
            "{field} in {json}"
        );
    }
    let one = report_from(
        store.connection(),
        now,
        &UptimeRequest {
            since: Some(("3h".into(), Timestamp(now.0 - 3 * H))),
            probe: Some("web".into()),
        },
        &[],
    )
    .unwrap();
    assert_eq!(one.probes.len(), 1);
    assert_eq!(one.probes[0].windows.len(), 1);
    assert_eq!(one.probes[0].windows[0].figures.up_ms, 2 * H);

    let bars = bars_from(store.connection(), now, 90, &[]).unwrap();
    assert_eq!(bars.len(), 2);
    let (_, web) = &bars[1];
    assert_eq!(web.len(), 90);
    assert_eq!(web[89].date, Timestamp(now.0 - 1).to_rfc3339()[..10]);
    assert_eq!(web[89].down_ms, H);
    assert!(web.iter().all(|c| c.availability.is_some()));
}

/// A rollup row damaged on disk is a precise error naming the probe and day, never a panic or
/// a silently wrong figure.
#[test]
fn a_corrupt_rollup_row_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = JournalStore::open(&dir.path().join(DATABASE_FILE)).unwrap();
    store
        .append(vec![
            transition("web", T0, Class::Up),
            transition("web", T0 + H, Class::Down),
        ])
        .unwrap();
    for damage in [
        "UPDATE uptime_days SET changes = x'0102'",
        "UPDATE uptime_days SET changes = x'0000000009'",
        "UPDATE uptime_days SET start_class = 7",
    ] {
        store.connection().execute_batch(damage).unwrap();
        let err = report_from(
            store.connection(),
            Timestamp(T0 + 2 * H),
            &UptimeRequest::default(),
            &[],
        )
        .unwrap_err();
        assert!(
            matches!(&err, UptimeError::CorruptRollup { probe, day } if probe == "web" && *day == day_of(T0)),
            "{damage}: {err:?}"
        );
        store
            .connection()
            .execute_batch("UPDATE uptime_days SET start_class = 0, changes = x''")
            .unwrap();
    }
}

/// Maintenance spans become one exclusion per covered probe: named ones (configured or not),
/// and configured ones carrying every label of a label scope; spans ended before `from` drop.
#[test]
fn maintenance_spans_exclude_the_probes_they_cover() {
    use crate::event::MaintenanceScope;
    use crate::maintenance::Span as Window;
    let labels: ProbeLabels = [
        ("web", vec![("team", "payments"), ("tier", "front")]),
        ("db", vec![("team", "payments")]),
        ("cron", vec![]),
    ]
    .into_iter()
    .map(|(name, pairs)| {
        let own = pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (name.to_string(), own)
    })
    .collect();
    let window = |probes: &[&str], scope_labels: &[(&str, &str)], from: i64, to: i64| Window {
        window: format!("m{from}"),
        scope: MaintenanceScope {
            probes: probes.iter().map(|p| p.to_string()).collect(),
            labels: scope_labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        from: Timestamp(from),
        to: Timestamp(to),
    };
    let names = |exclusions: Vec<Exclusion>| -> Vec<(String, i64, i64)> {
        let mut names: Vec<_> = exclusions
            .into_iter()
            .map(|e| (e.probe.unwrap(), e.from.0, e.to.0))
            .collect();
        names.sort();
        names
    };
    type Case<'a> = (&'a str, Window, Vec<(&'a str, i64, i64)>);
    let cases: Vec<Case> = vec![
        (
            "by label: every probe with all its labels",
            window(&[], &[("team", "payments")], T0, T0 + H),
            vec![("db", T0, T0 + H), ("web", T0, T0 + H)],
        ),
        (
            "by two labels",
            window(&[], &[("team", "payments"), ("tier", "front")], T0, T0 + H),
            vec![("web", T0, T0 + H)],
        ),
        (
            "by name, also one no longer configured",
            window(&["cron", "gone"], &[], T0, T0 + H),
            vec![("cron", T0, T0 + H), ("gone", T0, T0 + H)],
        ),
        (
            "by name and label, once each",
            window(&["web"], &[("tier", "front")], T0, T0 + H),
            vec![("web", T0, T0 + H)],
        ),
        (
            "no probe has the label",
            window(&[], &[("team", "search")], T0, T0 + H),
            vec![],
        ),
        (
            "ended before the window asked about",
            window(&["web"], &[], T0 - 2 * H, T0 - H),
            vec![],
        ),
    ];
    for (case, span, want) in cases {
        let want: Vec<(String, i64, i64)> = want
            .into_iter()
            .map(|(p, f, t)| (p.to_string(), f, t))
            .collect();
        assert_eq!(
            names(covered(&[span], &labels, Timestamp(T0 - H / 2))),
            want,
            "{case}"
        );
    }
}

#[test]
fn cached_bars_equal_a_full_read_through_days_probes_and_exclusions() {
    use Class::*;
    let dir = tempfile::tempdir().unwrap();
    let mut store = JournalStore::open(&dir.path().join(DATABASE_FILE)).unwrap();
    let mut cache = BarCache::default();
    let day5 = T0 + 5 * DAY_MS;
    // (events journaled before the request, request time, exclusions, what the step shows)
    type Step = (Vec<Event>, i64, Vec<Exclusion>, &'static str);
    let steps: Vec<Step> = vec![
        (
            vec![
                transition("web", T0, Up),
                transition("web", T0 + 2 * DAY_MS + H, Down),
                transition("db", T0 + DAY_MS, Up),
            ],
            day5 + H,
            vec![],
            "first request builds the cache; web has been down since day 2",
        ),
        (
            vec![],
            day5 + 2 * H,
            vec![],
            "same day: past days from the cache",
        ),
        (
            vec![transition("web", day5 + 3 * H, Up)],
            day5 + 4 * H,
            vec![],
            "the open span across days closes with the class already counted",
        ),
        (
            vec![transition("cron", day5 + 5 * H, Down)],
            day5 + 6 * H,
            vec![],
            "a probe first seen after the cache was built",
        ),
        (
            vec![],
            day5 + 7 * H,
            vec![all(T0 + 3 * DAY_MS, T0 + 3 * DAY_MS + 6 * H)],
            "new exclusions reshape past days",
        ),
        (
            vec![stopping(day5 + 8 * H)],
            day5 + DAY_MS + H,
            vec![all(T0 + 3 * DAY_MS, T0 + 3 * DAY_MS + 6 * H)],
            "a new UTC day",
        ),
        (
            vec![],
            day5 + DAY_MS + 2 * H,
            vec![all(T0 + 3 * DAY_MS, T0 + 3 * DAY_MS + 6 * H)],
            "and from the cache again",
        ),
    ];
    for (events, now, exclusions, step) in steps {
        store.append(events).unwrap();
        let now = Timestamp(now);
        let want = bars_from(store.connection(), now, 90, &exclusions).unwrap();
        let got = bars_cached(store.connection(), now, 90, &exclusions, &mut cache).unwrap();
        assert_eq!(got, want, "{step}");
    }
    assert_eq!(cache.hits, 4, "requests answered with cached past days");
}
