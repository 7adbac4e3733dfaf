//! netem delay distribution tables (normal, pareto, paretonormal), generated the way iproute2's
//! public-domain `netem/{normal,pareto,paretonormal}.c` generate them, so no .dist file is needed.

use super::spec::Distribution;

/// Entries per table, as iproute2 prints them (one every 4 of its 16384 steps).
pub const TABLE_LEN: usize = 4096;
const TABLE_SIZE: usize = 16384;
/// NETEM_DIST_SCALE: table values are in units of 1/8192 of the jitter.
const TABLE_FACTOR: f64 = 8192.0;
const PARETO_ALPHA: f64 = 3.0;

pub fn table(distribution: Distribution) -> Vec<i16> {
    match distribution {
        Distribution::Normal => {
            let normal = inverse_normal();
            (0..TABLE_SIZE)
                .step_by(4)
                .map(|i| clamp(normal[i] * TABLE_FACTOR))
                .collect()
        }
        Distribution::Pareto => (0..TABLE_LEN)
            .map(|n| pareto(65536 - 16 * n as i64))
            .collect(),
        Distribution::Paretonormal => {
            let normal = inverse_normal();
            (0..TABLE_SIZE)
                .step_by(4)
                .map(|i| {
                    let norm = clamp(normal[i] * TABLE_FACTOR) as i32;
                    let par = pareto(65536 - 4 * i as i64) as i32;
                    ((norm + par) / 2) as i16
                })
                .collect()
        }
    }
}

/// table[i] = the x whose standard normal CDF is i / TABLE_SIZE.
fn inverse_normal() -> Vec<f64> {
    let mut table = vec![0.0; TABLE_SIZE + 1];
    let mut step = 0u32;
    loop {
        let x = -10.0 + step as f64 * 0.00005;
        if x >= 10.05 {
            break;
        }
        let cdf = 0.5 + 0.5 * erf(x / std::f64::consts::SQRT_2);
        let i = (TABLE_SIZE as f64 * cdf).round() as usize;
        table[i.min(TABLE_SIZE)] = x;
        step += 1;
    }
    table
}

fn pareto(i: i64) -> i16 {
    let fraction = i as f64 / 65536.0;
    let value = (1.0 / fraction.powf(1.0 / PARETO_ALPHA) - 1.5) * (4.0 / 3.0) * TABLE_FACTOR;
    clamp(value)
}

fn clamp(value: f64) -> i16 {
    value.round().clamp(i16::MIN as f64, i16::MAX as f64) as i16
}

/// erf with |error| < 1.2e-7 (Numerical Recipes' Chebyshev fit of erfc): far finer than the
/// table's 1/8192 resolution.
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_known_values() {
        for (x, expected) in [
            (0.0, 0.0),
            (0.5, 0.520_499_88),
            (1.0, 0.842_700_79),
            (-2.0, -0.995_322_27),
        ] {
            assert!((erf(x) - expected).abs() < 1e-6, "erf({x})");
        }
    }

    #[test]
    fn tables_have_the_right_shape() {
        for distribution in [
            Distribution::Normal,
            Distribution::Pareto,
            Distribution::Paretonormal,
        ] {
            let table = table(distribution);
            assert_eq!(table.len(), TABLE_LEN, "{distribution:?}");
            // monotone non-decreasing: a table is an inverse CDF
            assert!(
                table.windows(2).all(|w| w[0] <= w[1]),
                "{distribution:?} not monotone"
            );
        }
        let normal = table(Distribution::Normal);
        // the median is ~0 and one sigma (CDF 0.8413) is ~8192
        assert!(
            normal[TABLE_LEN / 2].abs() <= 2,
            "{}",
            normal[TABLE_LEN / 2]
        );
        let sigma = normal[(0.8413 * TABLE_LEN as f64) as usize];
        assert!((8100..=8300).contains(&sigma), "{sigma}");
        // pareto starts at (1 - 1.5) * 4/3 * 8192 = -5461
        assert_eq!(table(Distribution::Pareto)[0], -5461);
    }
}
