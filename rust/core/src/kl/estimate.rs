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

use super::Tokens;
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
            "sequence {i}, position {pos}: {which} log-prob is {v} inside the mask"
        ));
    }
    if p > LOGPROB_TOL || q > LOGPROB_TOL {
        let (which, v) = if p > LOGPROB_TOL {
            ("policy", p)
        } else {
            ("reference", q)
        };
        return Err(invalid!(
            "sequence {i}, position {pos}: {which} log-prob is {v} > 0 inside the \
             mask; log-probs must be <= 0 (up to {LOGPROB_TOL:e} for rounding): \
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

/// Fast path: tight loops over the sequence's slices, with finiteness
/// tracked by a flag; the slow path below only runs to name an error.
#[allow(clippy::cast_possible_wrap)]
fn sum_span<const CLAMP: bool>(
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
        s.last = if p.is_empty() {
            -1
        } else {
            (start + p.len()) as i64 - 1
        };
    }
    (s, ok)
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
    let (s, ok) = match clamp {
        Some(c) => sum_span::<true>(slices, start, mask, c),
        None => sum_span::<false>(slices, start, mask, Clamp { lo: 0.0, hi: 0.0 }),
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
