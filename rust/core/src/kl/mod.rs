//! Token reductions over log-prob arrays: KL estimators and sequence sums.
//!
//! Method. Tokens sampled from the policy π carry two log-probs, log π(x)
//! and log π_ref(x). With log r = log π_ref(x) − log π(x), Schulman's
//! estimators of KL(π‖π_ref) per token are k1 = −log r, k2 = ½(log r)² and
//! k3 = (r − 1) − log r (J. Schulman, "Approximating KL Divergence", 2020);
//! TRL's `abs` is |log r| and its `mse` is ½(log r)², numerically k2. One
//! pass per sequence sums all five in float64 together with the token count
//! and the two log-prob sums (DPO needs those), so every figure is
//! available from a single read of the arrays. The exact KL from whole
//! distributions lives in [`full`].
//!
//! Layout. Every input is ragged: flat values plus `offsets` (n_seqs + 1,
//! starting at 0, ending at the value count). A padded (n, T) array is the
//! special case offsets = 0, T, 2T, …, so the Python side passes a view of
//! it without a copy. The selected tokens of a sequence come from a mask
//! (one byte per value, non-zero = selected), from a length (the first
//! `length` tokens), or are all of them.
//!
//! Masks select, they never multiply: padding often holds −inf or NaN and
//! −inf · 0 is NaN. Non-finite values inside the selection, and log-probs
//! above 0 (beyond `LOGPROB_TOL` of rounding), are errors that name the
//! sequence and the position; outside it they are never read.
//!
//! Parallelism: rayon over sequences, results collected in order and the
//! first error by sequence index reported, so output never depends on the
//! thread count. Plain float64 accumulation per sequence: compensated sums
//! were rejected because sequence lengths (≤ 10⁵ tokens) keep the rounding
//! error near 1e-12 relative, far below Monte-Carlo noise. Intermediate
//! per-token buffers were rejected: they would double the memory traffic.
//! The hot loop runs over plain slices and only tracks a "something was not
//! finite" flag; the sequence is re-walked token by token only to name an
//! error. The exponential of k3 dominated the cost as one libm `expm1` per
//! token; it is now a branch-free polynomial (`expm1.rs`, as accurate as
//! libm's and better for tiny ratios) computed for blocks of 64 tokens by
//! vector code, with eight per-lane sums per quantity added in lane order
//! at the end (so results do not depend on the CPU). Spans the vector path
//! cannot vouch for (a log ratio above 709, a bad or overflowing value)
//! are redone token by token with libm.

mod estimate;
mod expm1;
mod full;

pub use estimate::{reduce, token_values, Clamp, Estimator, Reduction, LOGPROB_TOL};
pub use full::{full_kl, FullKl};

use crate::{invalid, Result};

/// Which tokens of each sequence count.
#[derive(Clone, Copy, Debug)]
pub enum Selection<'a> {
    /// Every token of every sequence.
    All,
    /// One byte per value; non-zero selects the token.
    Mask(&'a [u8]),
    /// Per sequence, the number of leading tokens selected.
    Lengths(&'a [i64]),
}

impl<'a> Selection<'a> {
    /// A selection from an optional mask and optional lengths (not both).
    pub fn from_options(mask: Option<&'a [u8]>, lengths: Option<&'a [i64]>) -> Result<Self> {
        match (mask, lengths) {
            (Some(_), Some(_)) => Err(invalid!("give either a mask or lengths, not both")),
            (Some(m), None) => Ok(Selection::Mask(m)),
            (None, Some(l)) => Ok(Selection::Lengths(l)),
            (None, None) => Ok(Selection::All),
        }
    }
}

/// Validated sequence boundaries and token selection over `n_values` rows.
#[derive(Clone, Copy, Debug)]
pub struct Tokens<'a> {
    offsets: &'a [i64],
    selection: Selection<'a>,
}

impl<'a> Tokens<'a> {
    /// Check `offsets` and `selection` against `n_values` rows.
    pub fn new(offsets: &'a [i64], selection: Selection<'a>, n_values: usize) -> Result<Self> {
        check_offsets(offsets, n_values)?;
        let n_seqs = offsets.len() - 1;
        match selection {
            Selection::All => {}
            Selection::Mask(m) if m.len() != n_values => {
                return Err(invalid!(
                    "mask has {} values, log-probs have {n_values}",
                    m.len()
                ));
            }
            Selection::Mask(_) => {}
            Selection::Lengths(l) => check_lengths(offsets, l, n_seqs)?,
        }
        Ok(Tokens { offsets, selection })
    }

    /// Number of sequences.
    pub fn n_seqs(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Start and end (exclusive) of sequence `i` in the flat values.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn span(&self, i: usize) -> (usize, usize) {
        // Offsets were checked non-negative and non-decreasing in `new`.
        (self.offsets[i] as usize, self.offsets[i + 1] as usize)
    }

    /// The flat range holding sequence `i`'s selected tokens, and the mask
    /// slice over that range when selection is by mask.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn selected_span(&self, i: usize) -> (usize, usize, Option<&'a [u8]>) {
        let (start, end) = self.span(i);
        match self.selection {
            Selection::All => (start, end, None),
            Selection::Lengths(l) => (start, start + l[i] as usize, None),
            Selection::Mask(m) => (start, end, Some(&m[start..end])),
        }
    }

    /// Call `f(flat_index, position_in_sequence)` for each selected token
    /// of sequence `i`, in order, stopping at the first error.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn try_for_each<F>(&self, i: usize, mut f: F) -> Result<()>
    where
        F: FnMut(usize, usize) -> Result<()>,
    {
        let (start, end) = self.span(i);
        match self.selection {
            Selection::All => (start..end).try_for_each(|j| f(j, j - start)),
            Selection::Lengths(l) => {
                (start..start + l[i] as usize).try_for_each(|j| f(j, j - start))
            }
            Selection::Mask(m) => (start..end)
                .filter(|&j| m[j] != 0)
                .try_for_each(|j| f(j, j - start)),
        }
    }
}

fn check_offsets(offsets: &[i64], n_values: usize) -> Result<()> {
    let Some((&first, &last)) = offsets.first().zip(offsets.last()) else {
        return Err(invalid!("offsets are empty; they need n_seqs + 1 values"));
    };
    if first != 0 {
        return Err(invalid!("offsets must start at 0, found {first}"));
    }
    if usize::try_from(last).ok() != Some(n_values) {
        return Err(invalid!(
            "offsets end at {last}, but there are {n_values} log-prob values"
        ));
    }
    match offsets.windows(2).position(|w| w[1] < w[0]) {
        Some(i) => Err(invalid!(
            "offsets decrease at sequence {i} ({} then {})",
            offsets[i],
            offsets[i + 1]
        )),
        None => Ok(()),
    }
}

fn check_lengths(offsets: &[i64], lengths: &[i64], n_seqs: usize) -> Result<()> {
    if lengths.len() != n_seqs {
        return Err(invalid!(
            "lengths has {} values for {n_seqs} sequences",
            lengths.len()
        ));
    }
    for (i, &len) in lengths.iter().enumerate() {
        let room = offsets[i + 1] - offsets[i];
        if len < 0 || len > room {
            return Err(invalid!(
                "sequence {i}: length {len} outside 0..={room} (its token count)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_checked() {
        let err = |o: &[i64], n| Tokens::new(o, Selection::All, n).unwrap_err().to_string();
        assert!(err(&[], 0).contains("empty"));
        assert!(err(&[1, 2], 2).contains("start at 0"));
        assert!(err(&[0, 2], 3).contains("end at 2"));
        assert!(err(&[0, 3, 2, 4], 4).contains("sequence 1"));
        assert_eq!(
            Tokens::new(&[0, 0, 2], Selection::All, 2).unwrap().n_seqs(),
            2
        );
    }

    #[test]
    fn selections_are_checked() {
        let mask = [1u8, 0];
        let e = Tokens::new(&[0, 3], Selection::Mask(&mask), 3).unwrap_err();
        assert!(e.to_string().contains("mask has 2"));
        let e = Tokens::new(&[0, 2, 3], Selection::Lengths(&[2, 2]), 3).unwrap_err();
        assert!(e.to_string().contains("sequence 1: length 2"));
        let e = Tokens::new(&[0, 2], Selection::Lengths(&[-1]), 2).unwrap_err();
        assert!(e.to_string().contains("length -1"));
        assert!(Selection::from_options(Some(&mask), Some(&[1])).is_err());
    }

    #[test]
    fn selected_positions_follow_the_selection() {
        let visit = |sel| {
            let t = Tokens::new(&[0, 3, 5], sel, 5).unwrap();
            let mut seen = vec![];
            for i in 0..2 {
                t.try_for_each(i, |j, p| {
                    seen.push((i, j, p));
                    Ok(())
                })
                .unwrap();
            }
            seen
        };
        let mask = [1u8, 0, 1, 0, 1];
        assert_eq!(
            visit(Selection::Mask(&mask)),
            [(0, 0, 0), (0, 2, 2), (1, 4, 1)]
        );
        let lens = [2i64, 0];
        assert_eq!(visit(Selection::Lengths(&lens)), [(0, 0, 0), (0, 1, 1)]);
        assert_eq!(visit(Selection::All).len(), 5);
    }
}
