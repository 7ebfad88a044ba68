//! Per-token KL estimators and their per-sequence sums (see the module
//! header of `kl` for the method and its reference).
//!
//! k3 is computed as expm1(log r) − log r, not exp(log r) − 1 − log r: for
//! |log r| ≲ 1e-4 the second form loses every significant digit to
//! cancellation. Clamping, when asked, bounds each estimator's per-token
//! value (as OpenRLHF does) rather than the log-ratio, so k1 keeps its sign
//! and the count of touched tokens is reported per estimator.
//!
//! Log-probs are ≤ 0. A selected value above [`LOGPROB_TOL`] is refused,
//! not clipped: it means logits or probabilities were passed where
//! log-probs belong, and every estimator would be silently wrong. The
//! tolerance only absorbs rounding (log-softmax in float32 can return
//! +1e-7 for a token of probability ≈ 1); such values are used unchanged.

use rayon::prelude::*;

use super::{expm1, Tokens};
use crate::{invalid, Result};

/// The five per-token estimators, in the order of every `[_; 5]` here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimator {
    K1,
    K2,
    K3,
    Abs,
    Mse,
}

impl Estimator {
    /// All estimators, in array order.
    pub const ALL: [Estimator; 5] = [Self::K1, Self::K2, Self::K3, Self::Abs, Self::Mse];

    /// Parse the names used on the Python side (`k1`, `k2`, `k3`, `abs`, `mse`).
    pub fn from_name(name: &str) -> Result<Self> {
        match NAMES.iter().position(|&n| n == name) {
            Some(k) => Ok(Self::ALL[k]),
            None => Err(invalid!(
                "unknown estimator {name:?}; expected k1, k2, k3, abs or mse"
            )),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const NAMES: [&str; 5] = ["k1", "k2", "k3", "abs", "mse"];

/// Largest log-prob accepted inside the selection: 0 plus rounding slack.
pub const LOGPROB_TOL: f64 = 1e-6;

/// Optional bounds applied to every per-token estimator value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clamp {
    pub lo: f64,
    pub hi: f64,
}

impl Clamp {
    /// Bounds `lo ≤ hi`, neither NaN.
    pub fn new(lo: f64, hi: f64) -> Result<Self> {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(invalid!(
                "clamp bounds must satisfy lo <= hi, got ({lo}, {hi})"
            ));
        }
        Ok(Clamp { lo, hi })
    }
}

/// Per-sequence sums, struct of arrays (one entry per sequence).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reduction {
    /// Selected tokens per sequence.
    pub n_tokens: Vec<i64>,
    /// Sum of selected policy log-probs.
    pub sum_policy: Vec<f64>,
    /// Sum of selected reference log-probs.
    pub sum_ref: Vec<f64>,
    /// Sums of k1, k2, k3, abs, mse over selected tokens.
    pub sums: [Vec<f64>; 5],
    /// Flat index of the last selected token, −1 when none.
    pub last: Vec<i64>,
    /// Tokens whose value the clamp changed, per estimator.
    pub clamped: [u64; 5],
}

#[derive(Clone, Copy, Default)]
struct SeqStats {
    n: i64,
    policy: f64,
    reference: f64,
    sums: [f64; 5],
    last: i64,
    clamped: [u64; 5],
}

/// The five estimators of one token, in `Estimator::ALL` order.
#[inline]
fn token_estimates(policy: f64, reference: f64) -> [f64; 5] {
    let log_r = reference - policy;
    let k1 = -log_r;
    let k2 = 0.5 * log_r * log_r;
    let k3 = log_r.exp_m1() - log_r;
    [k1, k2, k3, k1.abs(), k2]
}

/// Estimators of the token at flat index `j`, checked and clamped.
#[inline]
fn checked_token(
    policy: &[f64],
    reference: &[f64],
    (i, j, pos): (usize, usize, usize),
    clamp: Option<Clamp>,
    clamped: &mut [u64; 5],
) -> Result<[f64; 5]> {
    let (p, q) = (policy[j], reference[j]);
    if !p.is_finite() || !q.is_finite() {
        let (which, v) = if p.is_finite() {
            ("reference", q)
        } else {
            ("policy", p)
        };
        return Err(invalid!(
            "sequence {i}, position {pos}: {which} log-prob is {v} in a selected token"
        ));
    }
    if p > LOGPROB_TOL || q > LOGPROB_TOL {
        let (which, v) = if p > LOGPROB_TOL {
            ("policy", p)
        } else {
            ("reference", q)
        };
        return Err(invalid!(
            "sequence {i}, position {pos}: {which} log-prob is {v} > 0 in a selected \
             token; log-probs must be <= 0 (up to {LOGPROB_TOL:e} for rounding): \
             were logits or probabilities passed?"
        ));
    }
    let mut v = token_estimates(p, q);
    if let Some(c) = clamp {
        for (x, n) in v.iter_mut().zip(clamped.iter_mut()) {
            let y = x.clamp(c.lo, c.hi);
            *n += u64::from(y != *x);
            *x = y;
        }
    }
    if let Some(k) = v.iter().position(|x| !x.is_finite()) {
        return Err(invalid!(
            "sequence {i}, position {pos}: {} overflows float64 (log ratio {}); \
             clamp it or check the mask",
            NAMES[k],
            q - p
        ));
    }
    Ok(v)
}

impl SeqStats {
    /// Add one selected token; returns false when a value is not finite
    /// or is a log-prob above [`LOGPROB_TOL`]. `CLAMP` is a constant so the
    /// unclamped loop carries no clamp code.
    #[inline(always)]
    fn add<const CLAMP: bool>(&mut self, p: f64, q: f64, c: Clamp) -> bool {
        // A finite log ratio leaves only k2 and k3 able to overflow, and an
        // overflow shows in their sums, which the caller checks. NaN fails
        // the comparisons too.
        let ok = (q - p).is_finite() && p <= LOGPROB_TOL && q <= LOGPROB_TOL;
        for (k, x) in token_estimates(p, q).into_iter().enumerate() {
            let y = if CLAMP { x.clamp(c.lo, c.hi) } else { x };
            if CLAMP {
                self.clamped[k] += u64::from(y != x);
            }
            self.sums[k] += y;
        }
        self.n += 1;
        self.policy += p;
        self.reference += q;
        ok
    }
}

/// Exact path: one token at a time with the C library's `expm1`; runs
/// for sequences the vectorised path leaves (a log ratio above
/// [`expm1::MAX_ARG`], a bad value, or an overflowing sum), and only
/// tracks a "something was not finite" flag; [`locate_error`] names the
/// error.
#[allow(clippy::cast_possible_wrap)]
fn sum_span_exact<const CLAMP: bool>(
    (p, q): (&[f64], &[f64]),
    start: usize,
    mask: Option<&[u8]>,
    c: Clamp,
) -> (SeqStats, bool) {
    let mut s = SeqStats {
        last: -1,
        ..SeqStats::default()
    };
    let mut ok = true;
    if let Some(m) = mask {
        for (j, ((&x, &y), &keep)) in p.iter().zip(q).zip(m).enumerate() {
            if keep != 0 {
                ok &= s.add::<CLAMP>(x, y, c);
                s.last = (start + j) as i64;
            }
        }
    } else {
        for (&x, &y) in p.iter().zip(q) {
            ok &= s.add::<CLAMP>(x, y, c);
        }
        s.last = last_of_unmasked(start, p.len());
    }
    (s, ok)
}

/// Index of the last non-zero mask byte; trailing padding is skipped
/// eight bytes at a time.
fn last_selected(m: &[u8]) -> Option<usize> {
    let mut end = m.len();
    while end >= 8 && m[end - 8..end].iter().all(|&k| k == 0) {
        end -= 8;
    }
    m[..end].iter().rposition(|&k| k != 0)
}

#[allow(clippy::cast_possible_wrap)]
fn last_of_unmasked(start: usize, len: usize) -> i64 {
    if len == 0 {
        -1
    } else {
        (start + len) as i64 - 1
    }
}

/// Accumulators per sum in the vectorised path, and tokens per block of
/// it (a multiple of LANES).
const LANES: usize = 8;
const BLOCK: usize = 64;
#[allow(clippy::cast_possible_truncation)]
const BLOCK_U32: u32 = BLOCK as u32;

/// Per-lane accumulators of the vectorised path. Lane l sums the tokens at
/// positions ≡ l (mod LANES) of the span, and the lanes are added in order
/// at the end, so the result depends on the span alone (not on where it
/// sits in the flat arrays, nor on the CPU's vector width).
#[derive(Clone, Copy)]
struct Lanes {
    /// k1, k2, k3, abs.
    sums: [[f64; LANES]; 4],
    clamped: [[u64; LANES]; 4],
    n: [u64; LANES],
    policy: [f64; LANES],
    reference: [f64; LANES],
    /// Largest selected log-prob, policy or reference.
    max_pq: [f64; LANES],
}

impl Lanes {
    fn new() -> Self {
        Lanes {
            sums: [[0.0; LANES]; 4],
            clamped: [[0; LANES]; 4],
            n: [0; LANES],
            policy: [0.0; LANES],
            reference: [0.0; LANES],
            max_pq: [f64::NEG_INFINITY; LANES],
        }
    }

    /// Add one block of BLOCK tokens, one group of LANES tokens at a time
    /// (token `g·LANES + l` goes to lane l). A token is selected when its
    /// mask byte is non-zero (`MASKED`) or always; an unselected token's
    /// values are replaced by 0 with a bit mask, never multiplied (padding
    /// may be NaN), so it adds exactly 0 to every sum. Each group is an
    /// element-wise loop (selects, no branches, no reduction: the compiler
    /// vectorises it, the exponential included) over arrays of LANES values
    /// that stay in registers, then the per-lane sums.
    #[inline(always)]
    #[allow(clippy::float_cmp, clippy::needless_range_loop)]
    fn add_block<const MASKED: bool, const CLAMP: bool>(
        &mut self,
        p: &[f64; BLOCK],
        q: &[f64; BLOCK],
        m: &[u8; BLOCK],
        c: Clamp,
    ) {
        for g in 0..BLOCK / LANES {
            let mut keep = [u64::MAX; LANES];
            let (mut pl, mut ql) = ([0.0; LANES], [0.0; LANES]);
            let mut v = [[0.0; LANES]; 4];
            let mut touched = [[0u64; LANES]; 4];
            for l in 0..LANES {
                let i = g * LANES + l;
                if MASKED {
                    keep[l] = u64::from(m[i] != 0).wrapping_neg();
                }
                pl[l] = f64::from_bits(p[i].to_bits() & keep[l]);
                ql[l] = f64::from_bits(q[i].to_bits() & keep[l]);
                let x = ql[l] - pl[l];
                let mut e = [-x, 0.5 * x * x, expm1::k3(x), x.abs()];
                if CLAMP {
                    for k in 0..4 {
                        let y = e[k];
                        let z = if y < c.lo { c.lo } else { y };
                        let z = if z > c.hi { c.hi } else { z };
                        touched[k][l] = u64::from(z != y) & keep[l];
                        e[k] = f64::from_bits(z.to_bits() & keep[l]);
                    }
                }
                for k in 0..4 {
                    v[k][l] = e[k];
                }
            }
            for l in 0..LANES {
                for k in 0..4 {
                    self.sums[k][l] += v[k][l];
                    if CLAMP {
                        self.clamped[k][l] += touched[k][l];
                    }
                }
                self.n[l] += keep[l] & 1;
                self.policy[l] += pl[l];
                self.reference[l] += ql[l];
                let top = if pl[l] > ql[l] { pl[l] } else { ql[l] };
                let acc = self.max_pq[l];
                self.max_pq[l] = if top > acc { top } else { acc };
            }
        }
    }

    /// Lane totals, added in lane order; the flag says whether the exact
    /// path must redo the span (a value the fast path cannot vouch for).
    #[allow(clippy::cast_possible_wrap)]
    fn finish(&self, last: i64) -> (SeqStats, bool) {
        let total = |a: &[f64; LANES]| a.iter().fold(0.0, |s, &v| s + v);
        let top = |a: &[f64; LANES]| a.iter().fold(f64::NEG_INFINITY, |s, &v| s.max(v));
        let mut s = SeqStats {
            n: self.n.iter().sum::<u64>() as i64,
            policy: total(&self.policy),
            reference: total(&self.reference),
            last,
            ..SeqStats::default()
        };
        for k in 0..4 {
            s.sums[k] = total(&self.sums[k]);
            s.clamped[k] = self.clamped[k].iter().sum();
        }
        // mse is k2, clamped alike.
        s.sums[4] = s.sums[1];
        s.clamped[4] = s.clamped[1];
        // A non-finite selected value makes its log-prob sum non-finite
        // (NaN fails the comparison above it); a log ratio past
        // `expm1::MAX_ARG` makes k3 +inf. The exact path redoes those
        // spans (an overflowing log-prob sum, accepted there, included).
        let ok = top(&self.max_pq) <= LOGPROB_TOL
            && s.policy.is_finite()
            && s.reference.is_finite()
            && s.sums.iter().all(|x| x.is_finite());
        (s, ok)
    }
}

/// Vectorised path over one span: blocks of BLOCK tokens, the tail padded
/// with unselected tokens.
#[inline(always)]
fn sum_span_body<const CLAMP: bool>(
    (p, q): (&[f64], &[f64]),
    start: usize,
    mask: Option<&[u8]>,
    c: Clamp,
) -> (SeqStats, bool) {
    let mut acc = Lanes::new();
    let full = p.len() / BLOCK * BLOCK;
    let (pb, qb) = (&p[..full], &q[..full]);
    let rest = p.len() - full;
    let mut tail_m = [0u8; BLOCK];
    match mask {
        Some(m) => {
            for ((bp, bq), bm) in pb
                .chunks_exact(BLOCK)
                .zip(qb.chunks_exact(BLOCK))
                .zip(m[..full].chunks_exact(BLOCK))
            {
                // A block with nothing selected (padding) would add exact
                // zeros: skipped, its values unread. One with everything
                // selected takes the unmasked code.
                let (bp, bq) = (
                    bp.try_into().unwrap_or(&[0.0; BLOCK]),
                    bq.try_into().unwrap_or(&[0.0; BLOCK]),
                );
                let bm: &[u8; BLOCK] = bm.try_into().unwrap_or(&[0; BLOCK]);
                let selected = bm.iter().fold(0u32, |n, &k| n + u32::from(k != 0));
                if selected == 0 {
                    continue;
                }
                if selected == BLOCK_U32 {
                    acc.add_block::<false, CLAMP>(bp, bq, bm, c);
                } else {
                    acc.add_block::<true, CLAMP>(bp, bq, bm, c);
                }
            }
            tail_m[..rest].copy_from_slice(&m[full..]);
        }
        None => {
            for (bp, bq) in pb.chunks_exact(BLOCK).zip(qb.chunks_exact(BLOCK)) {
                acc.add_block::<false, CLAMP>(
                    bp.try_into().unwrap_or(&[0.0; BLOCK]),
                    bq.try_into().unwrap_or(&[0.0; BLOCK]),
                    &[1; BLOCK],
                    c,
                );
            }
            tail_m[..rest].fill(1);
        }
    }
    if rest > 0 {
        let (mut tail_p, mut tail_q) = ([0.0; BLOCK], [0.0; BLOCK]);
        tail_p[..rest].copy_from_slice(&p[full..]);
        tail_q[..rest].copy_from_slice(&q[full..]);
        acc.add_block::<true, CLAMP>(&tail_p, &tail_q, &tail_m, c);
    }
    #[allow(clippy::cast_possible_wrap)]
    let last = match mask {
        Some(m) => last_selected(m).map_or(-1, |j| (start + j) as i64),
        None => last_of_unmasked(start, p.len()),
    };
    acc.finish(last)
}

/// The vectorised path compiled for wider vectors: the same body, so the
/// same operations in the same order (the test checks the bits).
macro_rules! sum_span_for {
    ($name:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        fn $name<const CLAMP: bool>(
            slices: (&[f64], &[f64]),
            start: usize,
            mask: Option<&[u8]>,
            c: Clamp,
        ) -> (SeqStats, bool) {
            sum_span_body::<CLAMP>(slices, start, mask, c)
        }
    };
}
sum_span_for!(sum_span_avx2, "avx2");
sum_span_for!(sum_span_avx512, "avx512f,avx512dq,avx512vl,avx512bw");

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

/// The vectorised path, with 512-bit or 256-bit vectors where the CPU has
/// them (one lane group of [`LANES`] doubles per 512-bit vector). No fused
/// multiply-adds on any path, so all give the same bits.
fn sum_span_fast<const CLAMP: bool>(
    slices: (&[f64], &[f64]),
    start: usize,
    mask: Option<&[u8]>,
    c: Clamp,
) -> (SeqStats, bool) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the running CPU supports these features, checked above.
        return unsafe { sum_span_avx512::<CLAMP>(slices, start, mask, c) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the running CPU supports AVX2, checked just above.
        return unsafe { sum_span_avx2::<CLAMP>(slices, start, mask, c) };
    }
    sum_span_body::<CLAMP>(slices, start, mask, c)
}

fn reduce_one(
    policy: &[f64],
    reference: &[f64],
    tokens: &Tokens,
    i: usize,
    clamp: Option<Clamp>,
) -> Result<SeqStats> {
    let (start, end, mask) = tokens.selected_span(i);
    let slices = (&policy[start..end], &reference[start..end]);
    let none = Clamp { lo: 0.0, hi: 0.0 };
    let (s, ok) = match clamp {
        Some(c) => sum_span_fast::<true>(slices, start, mask, c),
        None => sum_span_fast::<false>(slices, start, mask, none),
    };
    if ok {
        return Ok(s);
    }
    let (s, ok) = match clamp {
        Some(c) => sum_span_exact::<true>(slices, start, mask, c),
        None => sum_span_exact::<false>(slices, start, mask, none),
    };
    if ok && s.sums.iter().all(|x| x.is_finite()) {
        return Ok(s);
    }
    locate_error(policy, reference, tokens, i, clamp)
}

/// Walk sequence `i` token by token to name the first bad value.
fn locate_error(
    policy: &[f64],
    reference: &[f64],
    tokens: &Tokens,
    i: usize,
    clamp: Option<Clamp>,
) -> Result<SeqStats> {
    let mut clamped = [0u64; 5];
    tokens.try_for_each(i, |j, pos| {
        checked_token(policy, reference, (i, j, pos), clamp, &mut clamped).map(|_| ())
    })?;
    Err(invalid!(
        "sequence {i}: a per-sequence sum overflows float64"
    ))
}

fn check_pair(policy: &[f64], reference: &[f64]) -> Result<()> {
    if policy.len() != reference.len() {
        return Err(invalid!(
            "policy has {} log-probs, reference has {}",
            policy.len(),
            reference.len()
        ));
    }
    Ok(())
}

/// Sum every estimator over the selected tokens of each sequence.
///
/// `policy` and `reference` are flat log-probs of the sampled tokens laid
/// out by `tokens`. Errors name the first sequence (by index) and position
/// holding a non-finite selected value or a log-prob above [`LOGPROB_TOL`].
pub fn reduce(
    policy: &[f64],
    reference: &[f64],
    tokens: &Tokens,
    clamp: Option<Clamp>,
) -> Result<Reduction> {
    check_pair(policy, reference)?;
    let stats: Vec<Result<SeqStats>> = (0..tokens.n_seqs())
        .into_par_iter()
        .map(|i| reduce_one(policy, reference, tokens, i, clamp))
        .collect();
    let mut out = Reduction::default();
    for s in stats {
        let s = s?;
        out.n_tokens.push(s.n);
        out.sum_policy.push(s.policy);
        out.sum_ref.push(s.reference);
        out.last.push(s.last);
        for k in 0..5 {
            out.sums[k].push(s.sums[k]);
            out.clamped[k] += s.clamped[k];
        }
    }
    Ok(out)
}

/// Per-token values of one estimator, aligned with the input; tokens
/// outside the selection get 0 (no penalty, as PPO applies it).
pub fn token_values(
    policy: &[f64],
    reference: &[f64],
    tokens: &Tokens,
    estimator: Estimator,
    clamp: Option<Clamp>,
) -> Result<(Vec<f64>, u64)> {
    check_pair(policy, reference)?;
    let mut out = vec![0.0; policy.len()];
    let mut chunks = Vec::with_capacity(tokens.n_seqs());
    let mut rest = out.as_mut_slice();
    for i in 0..tokens.n_seqs() {
        let (start, end) = tokens.span(i);
        let (head, tail) = rest.split_at_mut(end - start);
        chunks.push((i, start, head));
        rest = tail;
    }
    let k = estimator.index();
    let counts: Vec<Result<u64>> = chunks
        .into_par_iter()
        .map(|(i, start, chunk)| {
            let mut clamped = [0u64; 5];
            tokens.try_for_each(i, |j, pos| {
                let v = checked_token(policy, reference, (i, j, pos), clamp, &mut clamped)?;
                chunk[j - start] = v[k];
                Ok(())
            })?;
            Ok(clamped[k])
        })
        .collect();
    let mut n_clamped = 0;
    for c in counts {
        n_clamped += c?;
    }
    Ok((out, n_clamped))
}

#[cfg(test)]
mod tests {
    use super::super::Selection;
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn negative_k1_bug_report() {
        // Policy [-0.1, -0.2, -2.0], reference [-0.3, -0.1, -1.0].
        let (p, q) = ([-0.1, -0.2, -2.0], [-0.3, -0.1, -1.0]);
        let t = Tokens::new(&[0, 3], Selection::All, 3).unwrap();
        let r = reduce(&p, &q, &t, None).unwrap();
        assert!(close(r.sums[0][0], -0.9, 1e-14));
        assert!(close(r.sums[1][0], 0.525, 1e-14));
        // e^-0.2 - 0.8 + e^0.1 - 1.1 + e - 2, written out another way.
        let k3 = (-0.2f64).exp() - 1.0 + 0.2 + 0.1f64.exp() - 1.0 - 0.1 + 1f64.exp() - 2.0;
        assert!(close(r.sums[2][0], k3, 1e-14));
        assert!(close(r.sums[2][0], 0.742_183, 1e-6));
        assert!(close(r.sums[3][0], 1.3, 1e-14));
        assert_eq!(r.sums[4], r.sums[1]);
        assert_eq!((r.n_tokens[0], r.last[0]), (3, 2));
    }

    #[test]
    fn masked_infinities_are_never_read() {
        let p = [-0.5, -1.0, f64::NEG_INFINITY];
        let q = [-0.7, -0.9, f64::NEG_INFINITY];
        let mask = [1u8, 1, 0];
        let t = Tokens::new(&[0, 3], Selection::Mask(&mask), 3).unwrap();
        let r = reduce(&p, &q, &t, None).unwrap();
        assert!(close(r.sums[0][0], 0.1, 1e-13));
        assert!(close(r.sums[2][0], 0.023_901_7, 1e-6));
        assert_eq!(r.n_tokens[0], 2);
        let all = Tokens::new(&[0, 3], Selection::All, 3).unwrap();
        let e = reduce(&p, &q, &all, None).unwrap_err().to_string();
        assert!(
            e.contains("sequence 0, position 2: policy log-prob is -inf"),
            "{e}"
        );
    }

    #[test]
    fn first_error_by_sequence_is_reported() {
        let p = [0.0, f64::NAN, 0.0, f64::NAN];
        let q = [0.0; 4];
        let t = Tokens::new(&[0, 1, 2, 3, 4], Selection::All, 4).unwrap();
        let e = reduce(&p, &q, &t, None).unwrap_err().to_string();
        assert!(e.starts_with("sequence 1, position 0"), "{e}");
    }

    #[test]
    fn k3_is_finite_in_float64_and_overflow_is_refused() {
        let t = Tokens::new(&[0, 1], Selection::All, 1).unwrap();
        let r = reduce(&[-100.0], &[0.0], &t, None).unwrap();
        assert!(close(r.sums[2][0], 100f64.exp() - 101.0, 1e-15));
        assert!(close(r.sums[2][0], 2.688_117_1e43, 1e-7));
        let e = reduce(&[-800.0], &[0.0], &t, None).unwrap_err().to_string();
        assert!(e.contains("k3 overflows"), "{e}");
        let c = Clamp::new(-10.0, 10.0).unwrap();
        let r = reduce(&[-800.0], &[0.0], &t, Some(c)).unwrap();
        assert_eq!(r.sums[2][0], 10.0);
        // k1 = -800 -> -10; k2, k3, abs, mse -> 10; all five touched.
        assert_eq!(r.clamped, [1, 1, 1, 1, 1]);
        assert_eq!(r.sums[0][0], -10.0);
    }

    #[test]
    fn positive_logprobs_are_refused_beyond_rounding() {
        let mask = [1u8, 1, 0];
        let t = Tokens::new(&[0, 3], Selection::Mask(&mask), 3).unwrap();
        let q = [-1.0, -1.0, -1.0];
        // +5 at position 1 of the policy: refused, naming sequence and position.
        let e = reduce(&[-1.0, 5.0, 9.0], &q, &t, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sequence 0, position 1: policy log-prob is 5 > 0"),
            "{e}"
        );
        let e = token_values(&q, &[-1.0, 0.5, 9.0], &t, Estimator::K1, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("position 1: reference log-prob is 0.5"), "{e}");
        // +9 outside the mask is never read; +1e-7 is rounding and is used.
        let r = reduce(&[-1.0, 1e-7, 9.0], &q, &t, None).unwrap();
        assert!(close(r.sums[0][0], 1.0 + 1e-7, 1e-15));
        let e = reduce(&[-1.0, 2e-6, 9.0], &q, &t, None).unwrap_err();
        assert!(e.to_string().contains("log-prob is 0.000002 > 0"), "{e}");
    }

    /// The vectorised path against the token-by-token one (libm's expm1),
    /// over spans of every length around the block size, every selection,
    /// with and without a clamp, and NaN padding outside the mask.
    fn bits(s: &SeqStats) -> (i64, i64, [u64; 5], [u64; 7]) {
        let f = |x: f64| x.to_bits();
        let sums = s.sums.map(f);
        let all = [
            sums[0],
            sums[1],
            sums[2],
            sums[3],
            sums[4],
            f(s.policy),
            f(s.reference),
        ];
        (s.n, s.last, s.clamped, all)
    }

    /// The span through the portable loop and through each vector width
    /// the running CPU has.
    fn every_isa(
        slices: (&[f64], &[f64]),
        sel: Option<&[u8]>,
        clamp: bool,
        c: Clamp,
    ) -> Vec<(&'static str, (SeqStats, bool))> {
        let mut out = vec![(
            "portable",
            if clamp {
                sum_span_body::<true>(slices, 5, sel, c)
            } else {
                sum_span_body::<false>(slices, 5, sel, c)
            },
        )];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: checked just above.
                out.push(("avx2", unsafe {
                    if clamp {
                        sum_span_avx2::<true>(slices, 5, sel, c)
                    } else {
                        sum_span_avx2::<false>(slices, 5, sel, c)
                    }
                }));
            }
            if has_avx512() {
                // SAFETY: checked just above.
                out.push(("avx512", unsafe {
                    if clamp {
                        sum_span_avx512::<true>(slices, 5, sel, c)
                    } else {
                        sum_span_avx512::<false>(slices, 5, sel, c)
                    }
                }));
            }
        }
        out
    }

    #[test]
    fn vectorised_path_agrees_with_the_exact_one() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut unif = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for len in (0..=3 * BLOCK + 1).chain([1000, 1001]) {
            let p: Vec<f64> = (0..len).map(|_| -4.0 * unif()).collect();
            let mut q: Vec<f64> = p
                .iter()
                .map(|&x| (x + 2.0 * unif() - 1.0).min(0.0))
                .collect();
            let mut m: Vec<u8> = (0..len).map(|_| u8::from(unif() < 0.7) * 3).collect();
            if len > 2 {
                q[len / 2] = -1e-9; // a tiny ratio somewhere
                m[len - 1] = 0;
            }
            let mut p_nan = p.clone();
            for (x, &k) in p_nan.iter_mut().zip(&m) {
                if k == 0 {
                    *x = f64::NAN;
                }
            }
            // Padding as a trainer lays it out: whole blocks selected, then
            // whole blocks not (skipped by the vector path), NaN there.
            let prefix: Vec<u8> = (0..len).map(|j| u8::from(j < len * 2 / 3)).collect();
            let mut p_pad = p.clone();
            for (x, &k) in p_pad.iter_mut().zip(&prefix) {
                if k == 0 {
                    *x = f64::NAN;
                }
            }
            for clamp in [None, Some(Clamp::new(-0.3, 0.05).unwrap())] {
                let c = clamp.unwrap_or(Clamp { lo: 0.0, hi: 0.0 });
                for (sel, pp) in [
                    (None, &p),
                    (Some(&m[..]), &p_nan),
                    (Some(&prefix[..]), &p_pad),
                ] {
                    let (fast, ok) = if clamp.is_some() {
                        sum_span_fast::<true>((pp, &q), 5, sel, c)
                    } else {
                        sum_span_fast::<false>((pp, &q), 5, sel, c)
                    };
                    let (exact, ok2) = if clamp.is_some() {
                        sum_span_exact::<true>((pp, &q), 5, sel, c)
                    } else {
                        sum_span_exact::<false>((pp, &q), 5, sel, c)
                    };
                    assert!(ok && ok2, "len {len}");
                    // Every vector width gives the portable loop's bits.
                    for (path, other) in every_isa((pp, &q), sel, clamp.is_some(), c) {
                        let other = other.0;
                        assert_eq!(bits(&other), bits(&fast), "len {len}: {path}");
                    }
                    assert_eq!((fast.n, fast.last), (exact.n, exact.last), "len {len}");
                    assert_eq!(fast.clamped, exact.clamped, "len {len}");
                    for k in 0..5 {
                        let scale = exact.sums[k].abs() + 1e-300;
                        let gap = (fast.sums[k] - exact.sums[k]).abs() / scale;
                        assert!(gap < 1e-13, "len {len} estimator {k}: {gap}");
                    }
                    assert!((fast.policy - exact.policy).abs() <= 1e-13 * exact.policy.abs());
                }
            }
        }
    }

    #[test]
    fn ratios_past_the_fast_range_use_the_c_library() {
        // x = 709.5: e^x is finite though 2^1024 is not; the exact path runs.
        let t = Tokens::new(&[0, 2], Selection::All, 2).unwrap();
        let r = reduce(&[-709.5, -1.0], &[0.0, -1.0], &t, None).unwrap();
        assert_eq!(r.sums[2][0], 709.5f64.exp_m1() - 709.5);
    }

    #[test]
    fn k3_keeps_digits_for_tiny_ratios() {
        let t = Tokens::new(&[0, 1], Selection::All, 1).unwrap();
        let r = reduce(&[-1e-8], &[0.0], &t, None).unwrap();
        // k3 ≈ x²/2 + x³/6 with x = 1e-8.
        assert!(close(r.sums[2][0], 0.5e-16 + 1e-24 / 6.0, 1e-12));
    }

    #[test]
    fn clamp_counts_only_touched_tokens() {
        let (p, q) = ([-0.1, -0.2, -2.0], [-0.3, -0.1, -1.0]);
        let t = Tokens::new(&[0, 3], Selection::All, 3).unwrap();
        let c = Clamp::new(-0.5, 0.5).unwrap();
        let r = reduce(&p, &q, &t, Some(c)).unwrap();
        // k1 = 0.2, -0.1, -1.0: one touched; k2 = .02, .005, .5: none.
        assert_eq!(r.clamped, [1, 0, 1, 1, 0]);
        assert!(close(r.sums[0][0], -0.4, 1e-14));
        assert!(Clamp::new(1.0, 0.0).is_err());
        assert!(Clamp::new(f64::NAN, 0.0).is_err());
    }

    #[test]
    fn lengths_and_padding_agree_with_ragged() {
        // Two padded rows of width 4, true lengths 2 and 3, NaN padding.
        let nan = f64::NAN;
        let p = [-1.0, -2.0, nan, nan, -0.5, -0.1, -3.0, nan];
        let q = [-1.5, -1.0, nan, nan, -0.5, -0.3, -2.0, nan];
        let t = Tokens::new(&[0, 4, 8], Selection::Lengths(&[2, 3]), 8).unwrap();
        let padded = reduce(&p, &q, &t, None).unwrap();
        let (rp, rq) = (
            [-1.0, -2.0, -0.5, -0.1, -3.0],
            [-1.5, -1.0, -0.5, -0.3, -2.0],
        );
        let t2 = Tokens::new(&[0, 2, 5], Selection::All, 5).unwrap();
        let ragged = reduce(&rp, &rq, &t2, None).unwrap();
        assert_eq!(padded.sums, ragged.sums);
        assert_eq!(padded.n_tokens, vec![2, 3]);
        assert_eq!(padded.last, vec![1, 6]);
        assert_eq!(padded.sum_policy, vec![-3.0, -3.6]);
    }

    #[test]
    fn token_values_align_with_input() {
        let p = [-0.5, -1.0, f64::NEG_INFINITY, -2.0];
        let q = [-0.7, -0.9, f64::NEG_INFINITY, -1.0];
        let mask = [1u8, 1, 0, 1];
        let t = Tokens::new(&[0, 3, 4], Selection::Mask(&mask), 4).unwrap();
        let (v, n) = token_values(&p, &q, &t, Estimator::K1, None).unwrap();
        assert_eq!(n, 0);
        assert!(close(v[0], 0.2, 1e-14) && close(v[1], -0.1, 1e-14));
        assert_eq!((v[2], v[3]), (0.0, -1.0));
        assert!(Estimator::from_name("k4").is_err());
        assert_eq!(Estimator::from_name("mse").unwrap(), Estimator::Mse);
    }
}
