//! Branch-free e^x − 1 and k3 = e^x − 1 − x for the token loop, so that a
//! loop over them vectorises (libm's `expm1` is a scalar call per token).
//!
//! Method (Cody & Waite's reduction, as in any libm): x = n ln 2 + r with n
//! an integer and |r| ≤ ln(2)/2, ln 2 in two parts so that n ln 2 is exact.
//! Then g(r) = e^r − 1 − r = r² P(r), P a degree-10 polynomial close to
//! minimax for (e^r − 1 − r)/r² on the interval (error below 3e-18 of
//! P, a fraction of an ulp; see [`reduce`]). With s = 2^n:
//!
//!   e^x − 1 = s (r + g) + (s − 1),
//!
//! where s (r + g) is exact scaling and s − 1 is exact for −60 ≤ n ≤ 52, so
//! only the last addition rounds: no cancellation for tiny |x| (n = 0
//! gives r + g with r = x exactly). k3 is rearranged so that n = 0 gives
//! g itself, which keeps full relative precision where k3 ≈ x²/2 and
//! e^x − 1 − x would cancel (see [`k3`]).
//!
//! Range: inputs below −60 are taken as −60 (e^−60 is below half an ulp of
//! 1, so e^x − 1 rounds to −1 either way); above [`MAX_ARG`], [`k3`]
//! returns +inf, which the caller's sum check sees, and redoes the span
//! with the C library. NaN stays NaN.

/// Largest argument handled; 2^n stays a normal number below it.
pub(super) const MAX_ARG: f64 = 709.0;

/// ln 2 split so that n * LN2_HI is exact for |n| < 2^32 (its low 32 bits
/// are zero) and LN2_HI + LN2_LO = ln 2 to about 2^-80.
const LN2_HI: f64 = 0.693_146_705_627_441_4;
const LN2_LO: f64 = 4.749_325_039_031_672_6e-7;
/// 1.5 * 2^52: adding it rounds a double below 2^51 in magnitude to an
/// integer, which then sits in the low bits of the sum.
const ROUNDER: f64 = 6_755_399_441_055_744.0;

/// The reduction of `x`: (n, 2^n, r, g(r)), branch-free.
#[inline(always)]
fn reduce(x: f64) -> (f64, f64, f64, f64) {
    // Comparisons with NaN are false, so NaN passes through.
    let x = if x < -60.0 { -60.0 } else { x };
    let x = if x > MAX_ARG { MAX_ARG } else { x };
    let shifted = x * std::f64::consts::LOG2_E + ROUNDER;
    let nf = shifted - ROUNDER;
    let r = (x - nf * LN2_HI) - nf * LN2_LO;
    // P(r) = (e^r − 1 − r)/r² by a degree-10 polynomial: Chebyshev
    // interpolation of P on [−ln2/2, ln2/2] (slightly widened), computed
    // in 50-digit arithmetic (mpmath's `chebyfit`) and rounded to f64; its
    // error is below 1.4e-18, against P ≥ 0.45. Evaluated by Estrin's
    // scheme (pairs, then pairs of pairs): a dependency chain of depth 4,
    // so that consecutive vectors overlap in the pipeline.
    const C: [f64; 11] = [
        0.5,
        0.166_666_666_666_666_7,
        0.041_666_666_666_666_67,
        0.008_333_333_333_326_136,
        0.001_388_888_888_888_374_8,
        0.000_198_412_698_748_206_27,
        2.480_158_732_554_774_3e-5,
        2.755_725_540_020_642_2e-6,
        2.755_727_364_311_03e-7,
        2.510_521_700_472_074_5e-8,
        2.091_468_696_808_687_6e-9,
    ];
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let q0 = (C[0] + C[1] * r) + (C[2] + C[3] * r) * r2;
    let q1 = (C[4] + C[5] * r) + (C[6] + C[7] * r) * r2;
    let q2 = (C[8] + C[9] * r) + C[10] * r2;
    let poly = (q0 + q1 * r4) + q2 * r8;
    let g = r2 * poly;
    // n in [−87, 1023] sits in the low bits of `shifted`; 2^n from its
    // biased exponent.
    let n = shifted.to_bits().wrapping_sub(ROUNDER.to_bits());
    let s = f64::from_bits(n.wrapping_add(1023) << 52);
    (nf, s, r, g)
}

/// e^x − 1 for x ≤ [`MAX_ARG`] (see the module header), within a few ulp
/// of the C library's `expm1` (the test states the bound). The token loop
/// needs only [`k3`]; this checks the shared reduction against libm.
#[cfg(test)]
fn exp_m1(x: f64) -> f64 {
    let (_, s, r, g) = reduce(x);
    s * (r + g) + (s - 1.0)
}

/// k3 = e^x − 1 − x for x ≤ [`MAX_ARG`], with relative precision kept for
/// tiny |x|: with x = n ln 2 + r and s = 2^n,
///
///   k3 = s g + ((s − 1) r + c_n),  c_n = s − 1 − n ln 2,
///
/// which is g itself for n = 0, and for n = ±1 (where k3 is smallest
/// outside n = 0) adds terms of at most a few times k3: c_n is exact to
/// ~2^-80 there (s − 1 and n LN2_HI are within a factor 2, so their
/// difference is exact).
#[inline(always)]
pub(super) fn k3(x: f64) -> f64 {
    let (nf, s, r, g) = reduce(x);
    let sm1 = s - 1.0;
    let c = (sm1 - nf * LN2_HI) - nf * LN2_LO;
    let k = s * g + (sm1 * r + c);
    // Below −60 the reduction used −60: e^x − 1 rounds to −1 all the same.
    // Above MAX_ARG: +inf, for the caller to redo with the C library.
    let k = if x < -60.0 { -1.0 - x } else { k };
    if x > MAX_ARG {
        f64::INFINITY
    } else {
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        if a == b {
            0.0
        } else {
            (a - b).abs() / b.abs()
        }
    }

    /// A dense grid over [−60, 709]: uniform steps, plus ±10^e for tiny
    /// magnitudes where e^x − 1 cancels, plus the reduction's boundaries.
    fn grid() -> Vec<f64> {
        let mut xs: Vec<f64> = (0..=2_000_000)
            .map(|i| -60.0 + 769.0 * f64::from(i) / 2e6)
            .collect();
        xs.extend((0..=400_000).map(|i| -2.0 + 4.0 * f64::from(i) / 4e5));
        for e in -3000..=0 {
            let m = 10f64.powf(f64::from(e) / 10.0);
            for v in [m, 1.37 * m, 7.9 * m] {
                xs.extend([v, -v]);
            }
        }
        xs.extend([f64::MIN_POSITIVE, 5e-324, -5e-324, 0.0, -0.0, MAX_ARG]);
        for k in -90..=1030 {
            let b = f64::from(k) * std::f64::consts::LN_2 / 2.0;
            xs.extend([b, b.next_up(), b.next_down()]);
        }
        xs.retain(|x| (-60.0..=MAX_ARG).contains(x));
        xs
    }

    #[test]
    fn exp_m1_matches_libm_within_a_few_ulp() {
        let mut worst = (0.0, 0.0);
        for x in grid() {
            let e = rel(exp_m1(x), x.exp_m1());
            if e > worst.0 {
                worst = (e, x);
            }
        }
        // Measured: 2.7e-16 (x = 0.34673, next to a reduction boundary).
        assert!(worst.0 <= 4.5e-16, "max relative error {worst:?}");
    }

    #[test]
    fn k3_matches_a_careful_reference() {
        // Reference: libm's expm1 minus x where that loses little (|x| > 1:
        // (e^x - 1)/k3 < 2.4, so under 3e-16), the series otherwise (|x| ≤
        // 1: terms to x^30/30! leave below 1e-32).
        let reference = |x: f64| {
            if x.abs() > 1.0 {
                x.exp_m1() - x
            } else {
                let (mut term, mut sum) = (x * x / 2.0, 0.0);
                for k in 3..=31 {
                    sum += term;
                    term *= x / f64::from(k);
                }
                sum
            }
        };
        let mut worst = (0.0, 0.0);
        let mut worst_libm = 0.0f64;
        for x in grid() {
            let (got, want) = (k3(x), reference(x));
            if want >= 1e-300 {
                worst_libm = worst_libm.max(rel(x.exp_m1() - x, want));
            }
            if want < 1e-300 {
                // x² underflows: both sides are 0 or a subnormal.
                assert!(got.abs() < 1e-290, "{x}: {got} vs {want}");
                continue;
            }
            let e = rel(got, want);
            if e > worst.0 {
                worst = (e, x);
            }
        }
        // Measured: 1.2e-15 (x = 0.347, just past the first reduction
        // boundary, where k3 = 0.068 is a sum of terms near 0.1); libm's
        // expm1(x) − x, the previous form, is off by up to 100% on the grid
        // (it gives 0 for |x| < 1e-8, all digits cancelled).
        assert!(worst.0 <= 1.5e-15, "max relative error {worst:?}");
        assert!(worst_libm > 0.5);
        assert_eq!(k3(0.0), 0.0);
        assert_eq!(k3(-1000.0), 999.0);
        assert!(k3(f64::NAN).is_nan());
        assert_eq!(k3(709.5), f64::INFINITY);
    }
}
