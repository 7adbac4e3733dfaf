//! The statistics behind an explanation: lift, the Wilson score lower bound, and the score that
//! orders findings. Pure functions of counts, so they are table-tested alone.

/// z of the Wilson bound: 4.0 (one-sided p ≈ 3.2·10⁻⁵). Every value of every dimension is tested
/// at once (typically 30-200 values, at most 8 × 1,024), so a 95 % bound would name noise every
/// time; at 4.0 a value failing like the rest is named about once in 31,000 tests (a Bonferroni
/// bound: under 1 % per question at 300 values).
pub const WILSON_Z: f64 = 4.0;

/// A value is named only when bad requests carry it at least this many times as often as good
/// ones do.
pub const MIN_LIFT: f64 = 1.5;

/// Lower bound of the Wilson score interval for `successes` out of `n` at `z`; 0 for `n = 0`.
pub fn wilson_lower(successes: u64, n: u64, z: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let (n, p) = (n as f64, successes.min(n) as f64 / n as f64);
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let margin = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - margin) / (1.0 + z2 / n)).max(0.0)
}

/// P(value | bad) / P(value | good), each count smoothed by ½ (Haldane) so a value that never
/// appears among good requests gets a large finite lift rather than infinity.
pub fn lift(bad_with: u64, bad_total: u64, good_with: u64, good_total: u64) -> f64 {
    let p_bad = (bad_with as f64 + 0.5) / (bad_total as f64 + 0.5);
    let p_good = (good_with as f64 + 0.5) / (good_total as f64 + 0.5);
    p_bad / p_good
}

/// Counts of one dimension value against all traffic of the scope and window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueCounts {
    /// Bad requests (errors or slow) carrying the value.
    pub bad: u64,
    /// All requests carrying the value.
    pub requests: u64,
    pub bad_total: u64,
    pub requests_total: u64,
}

/// What [`judge`] found about one value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    pub lift: f64,
    /// Bad rate among requests with the value.
    pub bad_rate: f64,
    /// Wilson lower bound (z = [`WILSON_Z`]) of that bad rate.
    pub bad_rate_lower: f64,
    /// Bad rate among all other requests: the baseline the value is compared with.
    pub rest_rate: f64,
    /// `(bad_rate_lower - rest_rate) × requests`: at least this many bad requests more than the
    /// value would have had failing like the rest. The order of findings.
    pub score: f64,
}

/// Why a value is not named (kept so tests can say which rule held a value back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotNamed {
    /// Fewer bad requests with the value than the minimum support.
    Support,
    /// The value is on every request: nothing to compare it with.
    NoRest,
    /// The Wilson lower bound of its bad rate does not exceed the rest's rate.
    NotAboveRest,
    /// Over-represented, but by less than [`MIN_LIFT`].
    LiftTooLow,
}

/// Names the value when it has the support, its bad rate is above the rest's with confidence
/// (Wilson lower bound > rest rate), and its lift is at least [`MIN_LIFT`].
pub fn judge(counts: ValueCounts, min_support: u64) -> Result<Judged, NotNamed> {
    let ValueCounts {
        bad,
        requests,
        bad_total,
        requests_total,
    } = counts;
    let bad = bad.min(requests);
    if bad < min_support.max(1) {
        return Err(NotNamed::Support);
    }
    let rest = requests_total.saturating_sub(requests);
    if rest == 0 {
        return Err(NotNamed::NoRest);
    }
    let rest_bad = bad_total.saturating_sub(bad).min(rest);
    let rest_rate = rest_bad as f64 / rest as f64;
    let bad_rate = bad as f64 / requests as f64;
    let bad_rate_lower = wilson_lower(bad, requests, WILSON_Z);
    if bad_rate_lower <= rest_rate {
        return Err(NotNamed::NotAboveRest);
    }
    let good_total = requests_total.saturating_sub(bad_total);
    let lift = lift(bad, bad_total, requests - bad, good_total);
    if lift < MIN_LIFT {
        return Err(NotNamed::LiftTooLow);
    }
    Ok(Judged {
        lift,
        bad_rate,
        bad_rate_lower,
        rest_rate,
        score: (bad_rate_lower - rest_rate) * requests as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values of the closed form, computed independently (Python, same formula):
    /// (successes, n, z, lower bound).
    #[test]
    fn wilson_lower_bound_table() {
        let cases = [
            (0, 0, 1.96, 0.0),
            (0, 10, 1.96, 0.0),
            (5, 10, 1.96, 0.236_590),
            (10, 10, 1.96, 0.722_460),
            (40, 100, 1.96, 0.309_400),
            (1, 100, 1.96, 0.001_767),
            (400, 1000, 3.0, 0.354_615),
            (20, 20, 3.0, 0.689_655),
        ];
        for (successes, n, z, want) in cases {
            let got = wilson_lower(successes, n, z);
            assert!(
                (got - want).abs() < 1e-5,
                "wilson_lower({successes}, {n}, {z}) = {got}, want {want}"
            );
        }
        // More evidence at the same rate tightens the bound toward the rate.
        assert!(wilson_lower(40, 100, 3.0) < wilson_lower(400, 1000, 3.0));
        assert!(wilson_lower(400, 1000, 3.0) < 0.4);
    }

    /// (bad with, bad total, good with, good total, lift).
    #[test]
    fn lift_table() {
        let cases = [
            // Same share among bad and good: no lift.
            (100, 1000, 1000, 10_000, 1.0),
            // 50 % of bad requests, 10 % of good ones: 5.
            (500, 1000, 1000, 10_000, 5.0),
            // Rarer among bad than good: below 1.
            (50, 1000, 2000, 10_000, 0.25),
        ];
        for (bad_with, bad_total, good_with, good_total, want) in cases {
            let got = lift(bad_with, bad_total, good_with, good_total);
            assert!(
                (got - want).abs() / want < 0.01,
                "lift({bad_with}, {bad_total}, {good_with}, {good_total}) = {got}, want ~{want}"
            );
        }
        // Never among good requests: large but finite.
        let never_good = lift(30, 30, 0, 10_000);
        assert!(
            never_good.is_finite() && never_good > 1000.0,
            "{never_good}"
        );
    }

    /// Each rule of `judge` holds a value back on its own.
    #[test]
    fn judge_table() {
        let counts = |bad, requests, bad_total, requests_total| ValueCounts {
            bad,
            requests,
            bad_total,
            requests_total,
        };
        let cases = [
            // eu-west: 400 of 1,000 failing, the rest 90 of 9,000.
            (counts(400, 1000, 490, 10_000), 20, Ok(())),
            // The same rates with 19 bad requests: below the support of 20.
            (counts(19, 48, 60, 4_000), 20, Err(NotNamed::Support)),
            // On every request.
            (counts(490, 10_000, 490, 10_000), 20, Err(NotNamed::NoRest)),
            // Fails exactly like the rest.
            (
                counts(50, 5_000, 100, 10_000),
                20,
                Err(NotNamed::NotAboveRest),
            ),
            // Slightly above the rest, well within noise.
            (
                counts(55, 5_000, 100, 10_000),
                20,
                Err(NotNamed::NotAboveRest),
            ),
            // Above the rest with confidence (huge counts), but only by a little.
            (
                counts(120_000, 1_000_000, 200_000, 2_000_000),
                20,
                Err(NotNamed::LiftTooLow),
            ),
        ];
        for (counts, support, want) in cases {
            let got = judge(counts, support).map(|_| ());
            assert_eq!(got, want, "{counts:?}");
        }
        let named = judge(counts(400, 1000, 490, 10_000), 20).unwrap();
        assert!((named.bad_rate - 0.4).abs() < 1e-9);
        assert!((named.rest_rate - 0.01).abs() < 1e-9);
        assert!(named.bad_rate_lower > 0.33 && named.bad_rate_lower < 0.4);
        // At least ~330 of eu-west's 400 failures are beyond what the rest's 1 % would give.
        assert!(
            named.score > 300.0 && named.score < 400.0,
            "{}",
            named.score
        );
        assert!(named.lift > 10.0, "{}", named.lift);
    }
}
