//! Exact KL(π‖π_ref) per token position from whole distributions.
//!
//! Each row holds the policy's and the reference's logits (or log-probs:
//! both are normalised here by a max-shifted log-sum-exp, which leaves
//! log-probs unchanged up to rounding). KL = Σ_v p_v (log p_v − log q_v),
//! with terms where p_v = 0 contributing 0 by convention; q_v = 0 where
//! p_v > 0 makes the KL infinite, which is refused with the row and the
//! vocabulary index rather than returned as inf. Sums per sequence use the
//! same offsets and selection as the sampled-token estimators, so the two
//! are directly comparable. A softmax in f32 (as trainers often do) was
//! rejected: its rounding is of the order of the small KLs being measured.

use rayon::prelude::*;

use super::Tokens;
use crate::{invalid, Result};

/// Exact KL summed over the selected rows of each sequence.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FullKl {
    /// Σ over selected rows of the exact per-row KL.
    pub sums: Vec<f64>,
    /// Selected rows per sequence.
    pub n_tokens: Vec<i64>,
}

/// log Σ exp(row), or an error naming the row when it has no finite mass.
fn log_sum_exp(row: &[f64], what: &str, (i, pos): (usize, usize)) -> Result<f64> {
    let mut max = f64::NEG_INFINITY;
    for (v, &x) in row.iter().enumerate() {
        if x.is_nan() || x == f64::INFINITY {
            return Err(invalid!(
                "sequence {i}, position {pos}: {what} logit {v} is {x}"
            ));
        }
        max = max.max(x);
    }
    if max == f64::NEG_INFINITY {
        return Err(invalid!(
            "sequence {i}, position {pos}: every {what} logit is -inf"
        ));
    }
    let total: f64 = row.iter().map(|&x| (x - max).exp()).sum();
    Ok(max + total.ln())
}

fn row_kl(p: &[f64], q: &[f64], at: (usize, usize)) -> Result<f64> {
    let (lse_p, lse_q) = (
        log_sum_exp(p, "policy", at)?,
        log_sum_exp(q, "reference", at)?,
    );
    let mut kl = 0.0;
    for (v, (&x, &y)) in p.iter().zip(q).enumerate() {
        if x == f64::NEG_INFINITY {
            continue;
        }
        if y == f64::NEG_INFINITY {
            return Err(invalid!(
                "sequence {}, position {}: the reference gives token {v} zero \
                 probability where the policy does not, so the KL is infinite",
                at.0,
                at.1
            ));
        }
        let lp = x - lse_p;
        kl += lp.exp() * (lp - (y - lse_q));
    }
    Ok(kl)
}

/// Exact KL per sequence from row-major (rows × `vocab`) logit matrices.
pub fn full_kl(policy: &[f64], reference: &[f64], vocab: usize, tokens: &Tokens) -> Result<FullKl> {
    if vocab == 0 {
        return Err(invalid!("the vocabulary is empty"));
    }
    if policy.len() != reference.len() || policy.len() % vocab != 0 {
        return Err(invalid!(
            "policy has {} values and reference {}; both must be rows × {vocab}",
            policy.len(),
            reference.len()
        ));
    }
    let per_seq: Vec<Result<(f64, i64)>> = (0..tokens.n_seqs())
        .into_par_iter()
        .map(|i| {
            let (mut sum, mut n) = (0.0, 0);
            tokens.try_for_each(i, |j, pos| {
                let rows = j * vocab..(j + 1) * vocab;
                sum += row_kl(&policy[rows.clone()], &reference[rows], (i, pos))?;
                n += 1;
                Ok(())
            })?;
            Ok((sum, n))
        })
        .collect();
    let mut out = FullKl::default();
    for r in per_seq {
        let (s, n) = r?;
        out.sums.push(s);
        out.n_tokens.push(n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::Selection;
    use super::*;

    #[test]
    fn bernoulli_kl_closed_form() {
        // p = (0.3, 0.7), q = (0.6, 0.4) given as unnormalised logits.
        let p = [0.3f64.ln() + 5.0, 0.7f64.ln() + 5.0];
        let q = [0.6f64.ln() - 2.0, 0.4f64.ln() - 2.0];
        let t = Tokens::new(&[0, 1], Selection::All, 1).unwrap();
        let r = full_kl(&p, &q, 2, &t).unwrap();
        let exact = 0.3 * (0.3f64 / 0.6).ln() + 0.7 * (0.7f64 / 0.4).ln();
        assert!((r.sums[0] - exact).abs() < 1e-15);
    }

    #[test]
    fn zero_policy_mass_is_fine_zero_reference_mass_is_refused() {
        let ninf = f64::NEG_INFINITY;
        let t = Tokens::new(&[0, 1], Selection::All, 1).unwrap();
        let r = full_kl(&[0.0, ninf], &[0.0, 0.0], 2, &t).unwrap();
        assert!((r.sums[0] - 2f64.ln()).abs() < 1e-15);
        let e = full_kl(&[0.0, 0.0], &[0.0, ninf], 2, &t).unwrap_err();
        assert!(e.to_string().contains("token 1 zero probability"));
    }

    #[test]
    fn unselected_rows_are_never_read() {
        let nan = f64::NAN;
        let p = [0.0, 1.0, nan, nan];
        let q = [0.0, 0.0, nan, nan];
        let mask = [1u8, 0];
        let t = Tokens::new(&[0, 2], Selection::Mask(&mask), 2).unwrap();
        let r = full_kl(&p, &q, 2, &t).unwrap();
        assert_eq!(r.n_tokens, vec![1]);
        let all = Tokens::new(&[0, 2], Selection::All, 2).unwrap();
        let e = full_kl(&p, &q, 2, &all).unwrap_err().to_string();
        assert!(
            e.contains("sequence 0, position 1: policy logit 0 is NaN"),
            "{e}"
        );
        assert!(full_kl(&p, &q[..3], 2, &t).is_err());
        assert!(full_kl(&p, &q, 0, &t).is_err());
    }
}
