//! Seeded random numbers for the count-space bootstrap.
//!
//! Generator: xoshiro256++ (Blackman & Vigna 2021, "Scrambled linear
//! pseudorandom number generators", ACM TOMS 47(4)), seeded through SplitMix64
//! (Steele, Lea & Flood 2014). Every bootstrap round gets its own generator
//! seeded from `(seed, round)`, so a round's draws never depend on which thread
//! ran it or in which order: results are bit-identical for any thread count.
//!
//! A round needs `x ~ Multinomial(N, n_c / N)` over the cells `c` (`N = Σ n_c`).
//! It is drawn exactly by Poissonisation with an exact correction ([`Redraw`]):
//! 1. `x_c ~ Poisson(n_c)`, independently. Their sum `S` is Poisson(N), and
//!    given `S = s` the vector is Multinomial(s, n_c / N): `s` independent
//!    battles, each in cell `c` with probability `n_c / N`.
//! 2. If `s > N`, remove `s − N` of those battles uniformly at random without
//!    replacement; the `N` left are still independent draws of the same law.
//!    If `s < N`, add `N − s` more independent draws. Either way `x` is then
//!    exactly Multinomial(N, n_c / N). The correction moves about `√N`
//!    battles, each located by a Fenwick tree or a binary search.
//!
//! The means `n_c` are integers fixed for the whole bootstrap, so each
//! distinct mean up to 256 gets its Poisson CDF tabulated once and a draw is
//! one uniform and a guided search (inversion, see [`Cdf`]). Larger means
//! use PTRS, the transformed rejection with squeeze of Hörmann (1993, "The
//! transformed rejection method for generating Poisson random variables",
//! Insurance: Mathematics and Economics 12), whose acceptance test compares
//! against the exact log-pmf. Uniform integers come from Lemire's (2019)
//! multiply-shift with rejection, so they are exactly uniform.
//!
//! Rejected: a categorical draw per battle costs O(N) per round, against
//! O(cells + √N) here; the chain of conditional binomials
//! `x_k ~ Bin(N − x_1 − … − x_{k−1}, n_k / (n_k + … + n_m))` and binomial
//! splits down a tree over the cells (both exact, but a binomial's law
//! changes with its `n` every round, so nothing can be tabulated: four
//! times slower here); a Poisson draw without the correction (Arena-style
//! "Poisson bootstrap": its total is not `N`, a different distribution).

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

    /// A uniform integer in `0..m` (`m > 0`), exactly uniform: Lemire's
    /// multiply-shift, redrawing the few words that would bias it.
    pub(crate) fn below(&mut self, m: u64) -> u64 {
        let mut wide = u128::from(self.next_u64()) * u128::from(m);
        if (wide as u64) < m {
            let threshold = m.wrapping_neg() % m;
            while (wide as u64) < threshold {
                wide = u128::from(self.next_u64()) * u128::from(m);
            }
        }
        (wide >> 64) as u64
    }
}

const LNFACT_TABLE: usize = 4096;
/// Below this, the table sums logs; from it on, it holds Stirling's series
/// (summing thousands of logs would accumulate more rounding than it has).
const STIRLING_FROM: usize = 256;

fn lnfact_table() -> &'static [f64] {
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![0.0; LNFACT_TABLE];
        for k in 1..LNFACT_TABLE {
            t[k] = if k < STIRLING_FROM {
                t[k - 1] + (k as f64).ln()
            } else {
                stirling(k as f64)
            };
        }
        t
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
        return lnfact_table()[k as usize];
    }
    stirling(k)
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

/// `ln P(X = k)` for `X ~ Poisson(lam)`.
fn poisson_ln_pmf(lam: f64, k: f64) -> f64 {
    k * lam.ln() - lam - ln_factorial(k)
}

/// A Poisson(lam) draw by PTRS (Hörmann 1993), for `lam ≥ 10`.
fn poisson_ptrs(rng: &mut Xoshiro256pp, lam: f64) -> u64 {
    let slam = lam.sqrt();
    let loglam = lam.ln();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let ln_inv_alpha = (1.1239 + 1.1328 / (b - 3.4)).ln();
    let v_r = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.uniform() - 0.5;
        let v = rng.uniform();
        let us = 0.5 - u.abs();
        let k = floor((2.0 * a / us + b) * u + lam + 0.43);
        if us >= 0.07 && v <= v_r {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        let lhs = v.ln() + ln_inv_alpha - (a / (us * us) + b).ln();
        if lhs <= -lam + k * loglam - ln_factorial(k) {
            return k as u64;
        }
    }
}

/// Largest mean whose Poisson CDF is tabulated (about `mean + 9·√mean`
/// entries: under 410).
const TABLE_MAX_MEAN: u64 = 256;

/// The Poisson(lam) CDF `F(0), F(1), …`, until the upper tail is below
/// 1e-18.
fn poisson_cdf(lam: u64) -> Vec<f64> {
    let l = lam as f64;
    let mut cdf = Vec::new();
    let mut acc = 0.0;
    for k in 0.. {
        let p = poisson_ln_pmf(l, k as f64).exp();
        acc += p;
        cdf.push(acc);
        if k > lam && p < 1e-18 {
            break;
        }
    }
    cdf
}

/// A tabulated Poisson CDF with its guide table (Chen & Asau 1974): entry
/// `j` of `guide` is a lower bound of the draw for every uniform `u` that
/// scales into bucket `j` (`⌊u·g⌋ = j`, `g` buckets, twice the table's
/// length), so inversion starts there and almost always ends after one
/// branch-free step, instead of bisecting the table (the bisection's chain
/// of dependent loads was a third of a bootstrap round). The draw is the
/// same `k` as by bisection, bit for bit.
pub(crate) struct Cdf {
    /// `F(0), F(1), …` then a sentinel 2.0 above every uniform.
    f: Vec<f64>,
    guide: Vec<u16>,
}

impl Cdf {
    pub(crate) fn new(lam: u64) -> Self {
        let mut f = poisson_cdf(lam);
        let len = f.len();
        let g = 2 * len;
        let guide = (0..g)
            .map(|j| {
                // Every u with ⌊u·g⌋ = j exceeds (j − 1)/g, even after the
                // rounding of u·g: a safe (if slightly low) start.
                let t = (j as f64 - 1.0) / g as f64;
                f.partition_point(|&v| v <= t) as u16
            })
            .collect();
        f.push(2.0);
        Self { f, guide }
    }

    /// Entries of the CDF (without the sentinel).
    fn len(&self) -> usize {
        self.f.len() - 1
    }

    /// The smallest `k` with `F(k) > u` (the table's length when `u` lies
    /// past its end): `partition_point`, started from the guide.
    fn invert(&self, u: f64) -> usize {
        let g = self.guide.len();
        let j = ((u * g as f64) as usize).min(g - 1);
        let mut k = usize::from(self.guide[j]);
        // One step without a branch, then (rarely) more; the sentinel ends
        // every scan.
        k += usize::from(self.f[k] <= u);
        while self.f[k] <= u {
            k += 1;
        }
        k
    }
}

/// A Poisson draw by inversion of a tabulated CDF; past the table's end
/// (a tail below 1e-18) the pmf is summed on.
fn poisson_from_cdf(rng: &mut Xoshiro256pp, lam: u64, cdf: &Cdf) -> u64 {
    let f = &cdf.f[..cdf.len()];
    loop {
        let u = rng.uniform();
        let k = cdf.invert(u);
        if k < f.len() {
            return k as u64;
        }
        let mut acc = f[f.len() - 1];
        for k in f.len()..f.len() + 64 {
            acc += poisson_ln_pmf(lam as f64, k as f64).exp();
            if u < acc {
                return k as u64;
            }
        }
        // Only rounding leaves u past the summed mass: draw again.
    }
}

/// Fenwick (binary indexed) tree of counts, for removing a uniformly
/// chosen unit in O(log cells).
struct Fenwick {
    tree: Vec<u64>,
    top: usize,
}

impl Fenwick {
    fn new(counts: &[u64]) -> Self {
        let m = counts.len();
        let mut tree = vec![0u64; m + 1];
        for i in 1..=m {
            tree[i] += counts[i - 1];
            let j = i + (i & i.wrapping_neg());
            if j <= m {
                tree[j] += tree[i];
            }
        }
        let top = if m == 0 {
            0
        } else {
            1 << (usize::BITS - 1 - m.leading_zeros())
        };
        Self { tree, top }
    }

    /// The cell holding unit `r` (0-based, in cell order), taken out.
    fn take(&mut self, mut r: u64) -> usize {
        let (m, mut pos, mut step) = (self.tree.len() - 1, 0usize, self.top);
        while step > 0 {
            let next = pos + step;
            if next <= m && self.tree[next] <= r {
                pos = next;
                r -= self.tree[next];
            }
            step >>= 1;
        }
        let mut i = pos + 1;
        while i <= m {
            self.tree[i] -= 1;
            i += i & i.wrapping_neg();
        }
        pos
    }
}

/// Exact Multinomial(N, n_c / N) redraws of fixed cell counts `n_c`; see the
/// module notes. Built once per bootstrap, shared by all rounds.
pub(crate) struct Redraw {
    counts: Vec<u64>,
    /// Running sums of `counts` (inclusive), for adding a draw.
    cumulative: Vec<u64>,
    total: u64,
    /// Per cell: index into `cdfs`, or `u32::MAX` (zero or large mean).
    law: Vec<u32>,
    cdfs: Vec<Cdf>,
}

impl Redraw {
    pub(crate) fn new(counts: &[u64]) -> Self {
        let mut slot = vec![u32::MAX; TABLE_MAX_MEAN as usize + 1];
        let mut cdfs = Vec::new();
        let law = counts
            .iter()
            .map(|&c| {
                if c == 0 || c > TABLE_MAX_MEAN {
                    return u32::MAX;
                }
                let s = &mut slot[c as usize];
                if *s == u32::MAX {
                    *s = cdfs.len() as u32;
                    cdfs.push(Cdf::new(c));
                }
                *s
            })
            .collect();
        let mut running = 0u64;
        let cumulative = counts
            .iter()
            .map(|&c| {
                running += c;
                running
            })
            .collect();
        Self {
            counts: counts.to_vec(),
            cumulative,
            total: running,
            law,
            cdfs,
        }
    }

    /// One redraw into `out` (the length of the counts).
    pub(crate) fn draw(&self, rng: &mut Xoshiro256pp, out: &mut [u64]) {
        let mut s = 0u64;
        for ((o, &c), &law) in out.iter_mut().zip(&self.counts).zip(&self.law) {
            // Means above TABLE_MAX_MEAN (so at least 10) go to PTRS.
            *o = match (c, law) {
                (0, _) => 0,
                (_, u32::MAX) => poisson_ptrs(rng, c as f64),
                _ => poisson_from_cdf(rng, c, &self.cdfs[law as usize]),
            };
            s += *o;
        }
        if s > self.total {
            let mut fenwick = Fenwick::new(out);
            for left in (self.total + 1..=s).rev() {
                out[fenwick.take(rng.below(left))] -= 1;
            }
        } else {
            for _ in s..self.total {
                let r = rng.below(self.total);
                out[self.cumulative.partition_point(|&f| f <= r)] += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pearson chi-square of integer draws against a pmf, pooling adjacent
    /// values into cells of expected count at least 20. Returns the statistic
    /// and its degrees of freedom.
    fn chi_square(draws: &[u64], pmf: impl Fn(u64) -> f64, top: u64) -> (f64, usize) {
        let mut hist = vec![0f64; top as usize + 1];
        for &d in draws {
            assert!(d <= top, "draw {d} beyond {top}");
            hist[d as usize] += 1.0;
        }
        let n = draws.len() as f64;
        let (mut stat, mut cells) = (0.0, 0);
        let (mut obs, mut exp) = (0.0, 0.0);
        for k in 0..=top {
            obs += hist[k as usize];
            exp += n * pmf(k);
            if exp >= 20.0 || k == top {
                stat += (obs - exp) * (obs - exp) / exp.max(1e-300);
                cells += 1;
                obs = 0.0;
                exp = 0.0;
            }
        }
        (stat, cells - 1)
    }

    fn limit(df: usize) -> f64 {
        df as f64 + 6.0 * (2.0 * df as f64).sqrt()
    }

    #[test]
    fn ln_factorial_matches_sum_of_logs() {
        let direct: f64 = (1..=1000).map(|k| (k as f64).ln()).sum();
        assert!((ln_factorial(1000.0) - direct).abs() < 1e-9 * direct);
        let direct: f64 = (1..=5000).map(|k| (k as f64).ln()).sum();
        assert!((ln_factorial(5000.0) - direct).abs() < 1e-9 * direct);
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
    fn below_is_uniform() {
        let mut rng = Xoshiro256pp::for_round(4, 4);
        let draws: Vec<u64> = (0..140_000).map(|_| rng.below(7)).collect();
        let (stat, df) = chi_square(&draws, |_| 1.0 / 7.0, 6);
        assert!(stat < limit(df), "chi2 {stat:.1} on {df} df");
        // A bound just over 2^63 is where the plain multiply-shift is most
        // biased (values below 2^63 would come twice as often).
        let m = (1u64 << 63) + (1 << 62);
        let low = (0..20_000).filter(|_| rng.below(m) < m / 2).count() as f64;
        assert!((low / 20_000.0 - 0.5).abs() < 0.02, "{low}");
    }

    #[test]
    fn poisson_draws_follow_the_exact_pmf() {
        // Tabulated CDFs (means up to 256) and PTRS (above).
        for (i, &lam) in [1u64, 3, 40, 256, 300, 5000].iter().enumerate() {
            let mut rng = Xoshiro256pp::for_round(11 + i as u64, 0);
            let cdf = Cdf::new(lam);
            let draws: Vec<u64> = (0..100_000)
                .map(|_| {
                    if lam <= TABLE_MAX_MEAN {
                        poisson_from_cdf(&mut rng, lam, &cdf)
                    } else {
                        poisson_ptrs(&mut rng, lam as f64)
                    }
                })
                .collect();
            let top = *draws.iter().max().unwrap();
            let pmf = |k: u64| poisson_ln_pmf(lam as f64, k as f64).exp();
            let (stat, df) = chi_square(&draws, pmf, top);
            assert!(stat < limit(df), "lam={lam}: chi2 {stat:.1} on {df} df");
        }
    }

    #[test]
    fn guided_inversion_matches_bisection() {
        // Every bucket edge and its neighbouring floats, CDF values and their
        // neighbours, and random uniforms: the guide must never start past
        // the answer, so both searches give the same k.
        // Neighbouring floats of a positive value, without f64::next_up
        // (newer than the crate's minimum Rust).
        let around = |v: f64| {
            let b = v.to_bits();
            [v, f64::from_bits(b - 1), f64::from_bits(b + 1)]
        };
        for lam in [1u64, 2, 7, 40, 67, 256] {
            let cdf = Cdf::new(lam);
            let g = cdf.guide.len();
            let mut us: Vec<f64> = Vec::new();
            for j in 0..=g {
                us.extend(around((j as f64 / g as f64).max(1e-300)));
            }
            for &v in &cdf.f[..cdf.len()] {
                us.extend(around(v));
            }
            let mut rng = Xoshiro256pp::for_round(lam, 9);
            us.extend((0..20_000).map(|_| rng.uniform()));
            for u in us.into_iter().filter(|u| *u > 0.0 && *u < 1.0) {
                let want = cdf.f[..cdf.len()].partition_point(|&v| v <= u);
                assert_eq!(cdf.invert(u), want, "lam {lam}, u {u:e}");
            }
        }
    }

    fn ln_multinomial(x: &[u64], counts: &[u64]) -> f64 {
        let n: u64 = counts.iter().sum();
        let mut lp = ln_factorial(n as f64);
        for (&xi, &ci) in x.iter().zip(counts) {
            lp -= ln_factorial(xi as f64);
            if xi > 0 {
                lp += xi as f64 * (ci as f64 / n as f64).ln();
            }
        }
        lp
    }

    #[test]
    fn redraw_is_exactly_multinomial_on_a_small_case() {
        // N = 5 over counts [1, 3, 0, 1]: small, so the correction moves a
        // large share of the battles both ways. Every outcome's frequency
        // against the enumerated multinomial pmf.
        let counts = [1u64, 3, 0, 1];
        let redraw = Redraw::new(&counts);
        let mut seen = std::collections::HashMap::new();
        let rounds = 200_000;
        let mut out = [0u64; 4];
        for r in 0..rounds {
            let mut rng = Xoshiro256pp::for_round(8, r);
            redraw.draw(&mut rng, &mut out);
            assert_eq!(out.iter().sum::<u64>(), 5);
            assert_eq!(out[2], 0, "an empty cell stays empty");
            *seen.entry(out).or_insert(0.0) += 1.0;
        }
        let mut outcomes = Vec::new();
        for a in 0..=5u64 {
            for b in 0..=5 - a {
                outcomes.push([a, b, 0, 5 - a - b]);
            }
        }
        let mut stat = 0.0;
        for x in &outcomes {
            let exp = rounds as f64 * ln_multinomial(x, &counts).exp();
            let obs = seen.get(x).copied().unwrap_or(0.0);
            stat += (obs - exp) * (obs - exp) / exp;
        }
        let df = outcomes.len() - 1;
        assert!(stat < limit(df), "chi2 {stat:.1} on {df} df");
    }

    #[test]
    fn redraw_keeps_total_means_and_covariances() {
        let counts = [5u64, 0, 100, 895, 300, 2];
        let n: u64 = counts.iter().sum();
        let redraw = Redraw::new(&counts);
        let rounds = 20_000;
        let mut out = [0u64; 6];
        let (mut sum, mut sq, mut cross) = ([0f64; 6], [0f64; 6], 0f64);
        for r in 0..rounds {
            let mut rng = Xoshiro256pp::for_round(7, r);
            redraw.draw(&mut rng, &mut out);
            assert_eq!(out.iter().sum::<u64>(), n);
            for k in 0..6 {
                sum[k] += out[k] as f64;
                sq[k] += (out[k] as f64).powi(2);
            }
            cross += out[2] as f64 * out[3] as f64;
        }
        let r = rounds as f64;
        for k in 0..6 {
            let p = counts[k] as f64 / n as f64;
            let (mean, var) = (sum[k] / r, sq[k] / r - (sum[k] / r).powi(2));
            let want = n as f64 * p * (1.0 - p);
            assert!(
                (mean - counts[k] as f64).abs() <= 5.0 * (want / r).sqrt() + 1e-12,
                "cell {k}: {mean}"
            );
            assert!(
                (var - want).abs() <= 0.06 * want + 1e-12,
                "cell {k}: var {var} vs {want}"
            );
        }
        // Multinomial cells are negatively correlated: cov = -N p_i p_j.
        let cov = cross / r - (sum[2] / r) * (sum[3] / r);
        let want = -(n as f64) * (100.0 / n as f64) * (895.0 / n as f64);
        assert!(
            (cov - want).abs() <= 0.08 * want.abs(),
            "cov {cov} vs {want}"
        );
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
