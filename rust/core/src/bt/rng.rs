//! Seeded random numbers for the count-space bootstrap.
//!
//! Generator: xoshiro256++ (Blackman & Vigna 2021, "Scrambled linear
//! pseudorandom number generators", ACM TOMS 47(4)), seeded through SplitMix64
//! (Steele, Lea & Flood 2014). Every bootstrap round gets its own generator
//! seeded from `(seed, round)`, so a round's draws never depend on which thread
//! ran it or in which order: results are bit-identical for any thread count.
//!
//! Binomial draws are exact:
//! - mean `n·min(p, 1-p)` below 10: sequential inversion of the CDF (the pmf
//!   is built by its ratio recurrence `P(x)/P(x-1) = (n-x+1)/x · p/q`);
//! - otherwise BTRS, the transformed rejection with squeeze of Hörmann (1993,
//!   "The generation of binomial random variates", J. Stat. Comput. Simul.
//!   46), whose acceptance test compares against the exact log-pmf, so the
//!   output follows the binomial law exactly (up to floating point). The
//!   logs of that test are formed only when a draw misses the squeeze, and
//!   `ln k!` comes from a table below 4096 (Stirling's series above), so a
//!   typical draw costs a square root, two divisions and two uniforms.
//!
//! A multinomial vector is drawn by binomial splits down a balanced tree
//! over its cells (the left half's total is `Bin(n, c_left / c)`, then each
//! half alike), with the probabilities formed from integer counts so no
//! rounding drift accumulates. Rejected: the chain of conditional binomials
//! `x_k ~ Bin(n − x_1 − … − x_{k−1}, c_k / (c_k + … + c_m))`, exact too,
//! but its draws have small `p` and huge `n` (slower squeeze, Stirling's
//! series in every exact test).
//!
//! Rejected: a categorical draw per battle (alias table) costs O(N) per round,
//! against O(cells) here; a Poisson or normal approximation is not exact for
//! the small cells that matter most.

use std::sync::OnceLock;

/// SplitMix64: used only to expand a seed into xoshiro state.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// xoshiro256++ generator.
pub(crate) struct Xoshiro256pp {
    s: [u64; 4],
}

impl Xoshiro256pp {
    /// The generator of bootstrap round `round` under `seed`. The two are
    /// mixed through SplitMix64 twice, so neighbouring rounds and neighbouring
    /// seeds start from unrelated states.
    pub(crate) fn for_round(seed: u64, round: u64) -> Self {
        let mut outer = SplitMix64::new(seed);
        let base = outer.next_u64();
        let mut sm = SplitMix64::new(base ^ round.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut s = [0u64; 4];
        for w in &mut s {
            *w = sm.next_u64();
        }
        if s == [0; 4] {
            s[0] = 1; // the all-zero state is the one fixed point
        }
        Self { s }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// A uniform draw in the open interval (0, 1), 53 bits.
    pub(crate) fn uniform(&mut self) -> f64 {
        // Through i64: the 53-bit value converts exactly with one instruction.
        ((self.next_u64() >> 11) as i64 as f64 + 0.5) * (1.0 / 9_007_199_254_740_992.0)
    }
}

const LNFACT_TABLE: usize = 4096;
/// Below this, the table sums logs; from it on, it holds Stirling's series
/// (summing thousands of logs would accumulate more rounding than it has).
const STIRLING_FROM: usize = 256;

/// `ln k!`, `ln k` and `1/k` for the integers below [`LNFACT_TABLE`].
struct Tables {
    lnf: Vec<f64>,
    ln: Vec<f64>,
    inv: Vec<f64>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut lnf = vec![0.0; LNFACT_TABLE];
        for k in 1..LNFACT_TABLE {
            lnf[k] = if k < STIRLING_FROM {
                lnf[k - 1] + (k as f64).ln()
            } else {
                stirling(k as f64)
            };
        }
        Tables {
            lnf,
            ln: (0..LNFACT_TABLE).map(|k| (k as f64).ln()).collect(),
            inv: (0..LNFACT_TABLE).map(|k| 1.0 / k as f64).collect(),
        }
    })
}

/// Stirling's series for ln Γ(k+1); its truncation error is below 1e-20 for
/// `k ≥ 256`.
fn stirling(k: f64) -> f64 {
    let z = k + 1.0;
    let r = 1.0 / z;
    let r2 = r * r;
    let series = r * (1.0 / 12.0 - r2 * (1.0 / 360.0 - r2 * (1.0 / 1260.0)));
    (z - 0.5) * z.ln() - z + 0.5 * (2.0 * std::f64::consts::PI).ln() + series
}

/// ln(k!): from a table below 4096, else by [`stirling`].
pub(crate) fn ln_factorial(k: f64) -> f64 {
    if k < LNFACT_TABLE as f64 {
        return tables().lnf[k as usize];
    }
    stirling(k)
}

/// Largest variance `n p q` for [`binomial_counts`]'s search from the mode
/// (about `1.6 sqrt(npq)` steps); beyond it BTRS is cheaper.
const MODE_SEARCH_MAX_VAR: f64 = 100.0;

/// An exact Binomial(n, left / all) draw, with `0 < left < all`.
///
/// When `n` and `all` are within the tables and the spread is small (the
/// bulk of a multinomial tree's splits), by inversion of the CDF searched
/// outward from the mode, alternately up and down: the pmf at the mode
/// comes from the tables (one exp), its neighbours by the ratio recurrence
/// `P(k+1)/P(k) = (n−k)/(k+1) · p/q`. It uses no log, against one to three
/// per draw in BTRS at these sizes, where its squeeze accepts only half the
/// time. Otherwise [`binomial`].
pub(crate) fn binomial_counts(rng: &mut Xoshiro256pp, n: u64, left: u64, all: u64) -> u64 {
    let right = all - left;
    let var = n as f64 * (left as f64 / all as f64) * (right as f64 / all as f64);
    if n as usize >= LNFACT_TABLE || all as usize >= LNFACT_TABLE || var > MODE_SEARCH_MAX_VAR {
        return binomial(rng, n, left as f64 / all as f64);
    }
    let t = tables();
    let (nn, l, r, a) = (n as usize, left as usize, right as usize, all as usize);
    let (ln_p, ln_q) = (t.ln[l] - t.ln[a], t.ln[r] - t.ln[a]);
    // The mode floor((n + 1) p), in integers.
    let m = (nn + 1) * l / a;
    let ln_pm = t.lnf[nn] - t.lnf[m] - t.lnf[nn - m] + m as f64 * ln_p + (nn - m) as f64 * ln_q;
    let pm = ln_pm.exp();
    let (up, down) = (l as f64 * t.inv[r], r as f64 * t.inv[l]);
    loop {
        let mut u = rng.uniform();
        if u < pm {
            return m as u64;
        }
        u -= pm;
        let (mut lo, mut hi, mut p_lo, mut p_hi) = (m, m, pm, pm);
        while lo > 0 || hi < nn {
            if hi < nn {
                p_hi *= (nn - hi) as f64 * t.inv[hi + 1] * up;
                hi += 1;
                if u < p_hi {
                    return hi as u64;
                }
                u -= p_hi;
            }
            if lo > 0 {
                p_lo *= lo as f64 * t.inv[nn - lo + 1] * down;
                lo -= 1;
                if u < p_lo {
                    return lo as u64;
                }
                u -= p_lo;
            }
        }
        // Only rounding leaves u past the computed total: draw again.
    }
}

/// An exact Binomial(n, p) draw.
pub(crate) fn binomial(rng: &mut Xoshiro256pp, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if p > 0.5 {
        return n - binomial(rng, n, 1.0 - p);
    }
    if (n as f64) * p < 10.0 {
        binomial_inversion(rng, n, p)
    } else {
        binomial_btrs(rng, n, p)
    }
}

fn binomial_inversion(rng: &mut Xoshiro256pp, n: u64, p: f64) -> u64 {
    let q = 1.0 - p;
    let s = p / q;
    let a = (n as f64 + 1.0) * s;
    let r0 = (n as f64 * q.ln()).exp();
    loop {
        let mut u = rng.uniform();
        let mut r = r0;
        let mut x = 0u64;
        // Walk up the CDF; restart in the (rounding-only) case of running past n.
        while u >= r {
            u -= r;
            x += 1;
            if x > n {
                break;
            }
            r *= a / x as f64 - s;
        }
        if x <= n {
            return x;
        }
    }
}

/// `x.floor()` for |x| < 2^63 without a libm call (the baseline x86-64
/// target has no rounding instruction): truncate, then step down below zero.
fn floor(x: f64) -> f64 {
    let t = x as i64 as f64;
    if t > x {
        t - 1.0
    } else {
        t
    }
}

/// The parts of BTRS's acceptance test that only the slow path needs.
struct BtrsTail {
    alpha: f64,
    lpq: f64,
    m: f64,
    h: f64,
}

fn binomial_btrs(rng: &mut Xoshiro256pp, n: u64, p: f64) -> u64 {
    let nf = n as f64;
    let q = 1.0 - p;
    let spq = (nf * p * q).sqrt();
    let b = 1.15 + 2.53 * spq;
    let a = -0.0873 + 0.0248 * b + 0.01 * p;
    let c = nf * p + 0.5;
    let v_r = 0.92 - 4.2 / b;
    // Most draws pass the squeeze; the logs of the exact test are formed
    // on the first draw that does not (the same values, so the same output).
    let mut tail: Option<BtrsTail> = None;
    loop {
        let u = rng.uniform() - 0.5;
        let v = rng.uniform();
        let us = 0.5 - u.abs();
        if us <= 0.0 {
            continue;
        }
        let k = floor((2.0 * a / us + b) * u + c);
        if k < 0.0 || k > nf {
            continue;
        }
        if us >= 0.07 && v <= v_r {
            return k as u64;
        }
        let t = tail.get_or_insert_with(|| {
            let m = floor((nf + 1.0) * p);
            BtrsTail {
                alpha: (2.83 + 5.1 / b) * spq,
                lpq: (p / q).ln(),
                m,
                h: ln_factorial(m) + ln_factorial(nf - m),
            }
        });
        let lv = (v * t.alpha / (a / (us * us) + b)).ln();
        if lv <= t.h - ln_factorial(k) - ln_factorial(nf - k) + (k - t.m) * t.lpq {
            return k as u64;
        }
    }
}

/// Draw `out ~ Multinomial(total, counts / Σcounts)`. `out` has the length of
/// `counts`; a zero count always draws zero.
///
/// By binomial splits down a balanced tree over the cells: the left half's
/// total is Binomial(n, left count / count), then each half recursively.
/// The splits have `p` near one half (the squeeze of BTRS accepts more
/// often), and all but the top few levels have `n` within the table of
/// `ln k!`. The conditional probabilities come from integer counts, so no
/// rounding drift accumulates.
pub(crate) fn multinomial(rng: &mut Xoshiro256pp, total: u64, counts: &[u64], out: &mut [u64]) {
    let mut prefix = Vec::with_capacity(counts.len() + 1);
    prefix.push(0u64);
    for c in counts {
        prefix.push(prefix[prefix.len() - 1] + c);
    }
    split(rng, total, &prefix, 0, counts.len(), out);
}

/// `out[lo..hi]` from `n` draws over the cells `lo..hi` (`prefix` holds the
/// running sums of the counts).
fn split(rng: &mut Xoshiro256pp, n: u64, prefix: &[u64], lo: usize, hi: usize, out: &mut [u64]) {
    if hi - lo == 1 || n == 0 {
        out[lo..hi].fill(0);
        out[lo] = n;
        return;
    }
    let mid = (lo + hi) / 2;
    let (left, all) = (prefix[mid] - prefix[lo], prefix[hi] - prefix[lo]);
    let x = if left == 0 {
        0
    } else if left == all {
        n
    } else {
        binomial_counts(rng, n, left, all)
    };
    split(rng, x, prefix, lo, mid, out);
    split(rng, n - x, prefix, mid, hi, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ln_pmf(n: u64, p: f64, k: u64) -> f64 {
        let (nf, kf) = (n as f64, k as f64);
        ln_factorial(nf) - ln_factorial(kf) - ln_factorial(nf - kf)
            + kf * p.ln()
            + (nf - kf) * (1.0 - p).ln()
    }

    /// Pearson chi-square of `draws` binomial samples against the exact pmf,
    /// pooling the tails into cells of expected count at least 20.
    fn chi_square(n: u64, p: f64, draws: usize, seed: u64) -> (f64, usize) {
        let mut rng = Xoshiro256pp::for_round(seed, 0);
        let mut hist = vec![0f64; n as usize + 1];
        for _ in 0..draws {
            hist[binomial(&mut rng, n, p) as usize] += 1.0;
        }
        let (mut stat, mut cells) = (0.0, 0);
        let (mut obs, mut exp) = (0.0, 0.0);
        for k in 0..=n {
            obs += hist[k as usize];
            exp += draws as f64 * ln_pmf(n, p, k).exp();
            if exp >= 20.0 || k == n {
                stat += (obs - exp) * (obs - exp) / exp.max(1e-300);
                cells += 1;
                obs = 0.0;
                exp = 0.0;
            }
        }
        (stat, cells - 1)
    }

    #[test]
    fn ln_factorial_matches_sum_of_logs() {
        let direct: f64 = (1..=1000).map(|k| (k as f64).ln()).sum();
        assert!((ln_factorial(1000.0) - direct).abs() < 1e-9 * direct);
        assert!(
            (ln_factorial(300.0) - (1..=300).map(|k| (k as f64).ln()).sum::<f64>()).abs() < 1e-9
        );
        assert_eq!(ln_factorial(0.0), 0.0);
    }

    #[test]
    fn splitmix_reference_value() {
        // First output of SplitMix64 seeded with 0 (published test vector).
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn binomial_follows_the_exact_pmf() {
        // Both samplers (inversion: mean < 10; BTRS: mean >= 10), both tails.
        for (i, &(n, p)) in [(20, 0.2), (50, 0.3), (1000, 0.4), (10_000, 0.93), (7, 0.5)]
            .iter()
            .enumerate()
        {
            let (stat, df) = chi_square(n, p, 200_000, 11 + i as u64);
            let limit = df as f64 + 6.0 * (2.0 * df as f64).sqrt();
            assert!(stat < limit, "n={n} p={p}: chi2 {stat:.1} on {df} df");
        }
    }

    #[test]
    fn binomial_edge_cases() {
        let mut rng = Xoshiro256pp::for_round(1, 2);
        assert_eq!(binomial(&mut rng, 0, 0.3), 0);
        assert_eq!(binomial(&mut rng, 9, 0.0), 0);
        assert_eq!(binomial(&mut rng, 9, 1.0), 9);
        for _ in 0..1000 {
            assert!(binomial(&mut rng, 3_000_000_000, 1e-9) <= 3_000_000_000);
        }
    }

    #[test]
    fn multinomial_keeps_total_and_means() {
        let counts = [5u64, 0, 100, 895];
        let mut out = [0u64; 4];
        let mut sums = [0f64; 4];
        let rounds = 20_000;
        for r in 0..rounds {
            let mut rng = Xoshiro256pp::for_round(7, r);
            multinomial(&mut rng, 1000, &counts, &mut out);
            assert_eq!(out.iter().sum::<u64>(), 1000);
            assert_eq!(out[1], 0);
            for (s, o) in sums.iter_mut().zip(out) {
                *s += o as f64;
            }
        }
        for (k, c) in counts.iter().enumerate() {
            let mean = sums[k] / rounds as f64;
            let p = *c as f64 / 1000.0;
            let se = (1000.0 * p * (1.0 - p) / rounds as f64).sqrt();
            assert!(
                (mean - *c as f64).abs() <= 5.0 * se + 1e-12,
                "cell {k}: {mean}"
            );
        }
    }

    #[test]
    fn rounds_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| Xoshiro256pp::for_round(3, 5).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Xoshiro256pp::for_round(3, 5).next_u64(),
            Xoshiro256pp::for_round(3, 6).next_u64()
        );
        assert_ne!(
            Xoshiro256pp::for_round(3, 5).next_u64(),
            Xoshiro256pp::for_round(4, 5).next_u64()
        );
    }
}

#[cfg(test)]
mod tmp_bench {
    use super::*;
    fn chain(rng: &mut Xoshiro256pp, total: u64, counts: &[u64], out: &mut [u64]) {
        let mut left_n = total;
        let mut left_c: u64 = counts.iter().sum();
        for (c, o) in counts.iter().zip(out.iter_mut()) {
            if left_n == 0 || *c == 0 { *o = 0; continue; }
            let x = if *c >= left_c { left_n } else { binomial(rng, left_n, *c as f64 / left_c as f64) };
            *o = x; left_n -= x; left_c -= c;
        }
    }
    #[test]
    #[ignore]
    fn bench_multinomial() {
        let mut g = Xoshiro256pp::for_round(3, 3);
        let counts: Vec<u64> = (0..14850).map(|i| if i % 3 == 2 { 13 + (g.next_u64() % 10) } else { 30 + (g.next_u64() % 50) }).collect();
        let total: u64 = counts.iter().sum();
        let mut out = vec![0u64; counts.len()];
        for _ in 0..3 {
            let mut rng = Xoshiro256pp::for_round(1, 1);
            let t = std::time::Instant::now();
            for _ in 0..200 { chain(&mut rng, total, &counts, &mut out); }
            let tc = t.elapsed().as_secs_f64() / 200.0;
            let t = std::time::Instant::now();
            for _ in 0..200 { multinomial(&mut rng, total, &counts, &mut out); }
            let tt = t.elapsed().as_secs_f64() / 200.0;
            eprintln!("per round: chain {:.3} ms, tree {:.3} ms", tc * 1e3, tt * 1e3);
        }
    }
}
