//! The threshold machine: turns a stream of check results into Up/Down decisions, so one
//! blip does not page anyone and one lucky success does not declare a recovery.

pub use crate::event::ProbeState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: ProbeState,
    pub to: ProbeState,
}

impl Transition {
    /// Down -> Up: the moment a recovery is counted.
    pub fn is_recovery(self) -> bool {
        self.to == ProbeState::Up && matches!(self.from, ProbeState::Down | ProbeState::Recovering)
    }
}

/// "Down when `failures` of the last `within` checks failed" (Monit's `X times within Y
/// cycles`): catches a service that fails every other check and never fails `fail_after` times
/// in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapRule {
    pub failures: u32,
    /// At most 64: the history is one bit per check in a `u64`.
    pub within: u32,
}

#[derive(Debug, Clone)]
pub struct ThresholdMachine {
    fail_after: u32,
    recover_after: u32,
    flap: Option<FlapRule>,
    /// One bit per check, newest in bit 0; a set bit is a failure.
    history: u64,
    state: ProbeState,
    /// Consecutive results agreeing with the direction the state is moving in.
    streak: u32,
    recoveries_total: u64,
}

impl ThresholdMachine {
    pub fn new(fail_after: u32, recover_after: u32) -> Self {
        Self {
            fail_after: fail_after.max(1),
            recover_after: recover_after.max(1),
            flap: None,
            history: 0,
            state: ProbeState::Unknown,
            streak: 0,
            recoveries_total: 0,
        }
    }

    /// Continue counting recoveries from a previous run (read back from the journal).
    pub fn with_recoveries(mut self, recoveries_total: u64) -> Self {
        self.recoveries_total = recoveries_total;
        self
    }

    pub fn with_flap_rule(mut self, rule: Option<FlapRule>) -> Self {
        self.flap = rule.map(|r| FlapRule {
            within: r.within.clamp(1, 64),
            failures: r.failures.clamp(1, r.within.clamp(1, 64)),
        });
        self
    }

    /// Failures among the last `within` checks.
    fn recent_failures(&self, within: u32) -> u32 {
        let mask = if within >= 64 {
            u64::MAX
        } else {
            (1u64 << within) - 1
        };
        (self.history & mask).count_ones()
    }

    fn flapping(&self) -> bool {
        self.flap
            .is_some_and(|rule| self.recent_failures(rule.within) >= rule.failures)
    }

    pub fn state(&self) -> ProbeState {
        self.state
    }

    pub fn recoveries_total(&self) -> u64 {
        self.recoveries_total
    }

    /// Feed one check result; returns the transition it caused, if any.
    pub fn observe(&mut self, success: bool) -> Option<Transition> {
        use ProbeState::*;
        self.history = (self.history << 1) | u64::from(!success);
        let next = match (self.state, success) {
            (Unknown | Up, true) => {
                self.streak = 0;
                Up
            }
            (Unknown | Up | Failing, false) => {
                self.streak = if self.state == Failing {
                    self.streak + 1
                } else {
                    1
                };
                if self.streak >= self.fail_after || self.flapping() {
                    Down
                } else {
                    Failing
                }
            }
            (Failing, true) => {
                self.streak = 0;
                Up
            }
            (Down, false) => Down,
            (Down | Recovering, true) => {
                self.streak = if self.state == Recovering {
                    self.streak + 1
                } else {
                    1
                };
                if self.streak >= self.recover_after {
                    Up
                } else {
                    Recovering
                }
            }
            (Recovering, false) => {
                self.streak = 0;
                Down
            }
        };
        if next == self.state {
            return None;
        }
        let transition = Transition {
            from: self.state,
            to: next,
        };
        if transition.is_recovery() {
            self.recoveries_total += 1;
            // A recovered service starts with a clean slate: old failures must not make the
            // next single failure look like flapping.
            self.history = 0;
        }
        if next == Down || next == Up {
            self.streak = 0;
        }
        self.state = next;
        Some(transition)
    }
}

#[cfg(test)]
mod tests {
    use super::ProbeState::*;
    use super::*;

    /// (fail_after, recover_after, results as 'o'/'x', states after each result, recoveries)
    const CASES: &[(u32, u32, &str, &[ProbeState], u64)] = &[
        (3, 1, "ooo", &[Up, Up, Up], 0),
        (3, 1, "xxx", &[Failing, Failing, Down], 0),
        (3, 1, "oxxo", &[Up, Failing, Failing, Up], 0),
        (3, 1, "oxxxo", &[Up, Failing, Failing, Down, Up], 1),
        (1, 1, "oxoxo", &[Up, Down, Up, Down, Up], 2),
        (
            2,
            3,
            "xxooo",
            &[Failing, Down, Recovering, Recovering, Up],
            1,
        ),
        (
            2,
            3,
            "xxooxo",
            &[Failing, Down, Recovering, Recovering, Down, Recovering],
            0,
        ),
        (
            2,
            2,
            "xxxxxxoo",
            &[Failing, Down, Down, Down, Down, Down, Recovering, Up],
            1,
        ),
        // a failure streak after a recovery starts from zero again
        (
            2,
            1,
            "xxoxox",
            &[Failing, Down, Up, Failing, Up, Failing],
            1,
        ),
    ];

    #[test]
    fn threshold_table() {
        for (fail_after, recover_after, results, states, recoveries) in CASES {
            let mut machine = ThresholdMachine::new(*fail_after, *recover_after);
            let seen: Vec<ProbeState> = results
                .chars()
                .map(|c| {
                    machine.observe(c == 'o');
                    machine.state()
                })
                .collect();
            assert_eq!(
                &seen, states,
                "fail_after={fail_after} recover_after={recover_after} {results}"
            );
            assert_eq!(machine.recoveries_total(), *recoveries, "{results}");
        }
    }

    #[test]
    fn flap_rule_table() {
        // (fail_after, failures within, results, states after each result)
        // (fail_after, (failures, within), results, states)
        type Case<'a> = (u32, (u32, u32), &'a str, &'a [ProbeState]);
        let cases: &[Case] = &[
            // alternating failures never reach 3 in a row, but 3 of the last 5 do
            (3, (3, 5), "xoxox", &[Failing, Up, Failing, Up, Down]),
            // spread too thin: 3 failures over 7 checks, never 3 within 5
            (
                3,
                (3, 5),
                "xooxoox",
                &[Failing, Up, Up, Failing, Up, Up, Failing],
            ),
            // the consecutive rule still works alongside
            (2, (5, 10), "xx", &[Failing, Down]),
            // after recovery the history is clean: one failure is just Failing
            (3, (2, 4), "xoxoxo", &[Failing, Up, Down, Up, Failing, Up]),
            // a 64-check window counts every bit
            (64, (2, 64), &format!("x{}x", "o".repeat(60)), &[]),
        ];
        for (fail_after, (failures, within), results, states) in cases {
            let mut machine =
                ThresholdMachine::new(*fail_after, 1).with_flap_rule(Some(FlapRule {
                    failures: *failures,
                    within: *within,
                }));
            let seen: Vec<ProbeState> = results
                .chars()
                .map(|c| {
                    machine.observe(c == 'o');
                    machine.state()
                })
                .collect();
            if states.is_empty() {
                assert_eq!(seen.last(), Some(&Down), "{results}");
            } else {
                assert_eq!(&seen, states, "{results}");
            }
        }
    }

    #[test]
    fn reports_only_real_transitions() {
        let mut machine = ThresholdMachine::new(2, 1);
        assert_eq!(
            machine.observe(true),
            Some(Transition {
                from: Unknown,
                to: Up
            })
        );
        assert_eq!(machine.observe(true), None);
        assert_eq!(
            machine.observe(false),
            Some(Transition {
                from: Up,
                to: Failing
            })
        );
        assert_eq!(
            machine.observe(false),
            Some(Transition {
                from: Failing,
                to: Down
            })
        );
        assert_eq!(machine.observe(false), None);
        let recovery = machine.observe(true).unwrap();
        assert!(recovery.is_recovery());
    }
}
