//! Collapse battles to per-pair counts in one pass.
//!
//! Every statistic of the item Bradley-Terry model (and of its tie
//! extensions) depends on the battles only through, for each unordered pair
//! `{i, j}`, the (weighted) number of `i` wins, `j` wins and ties. So the `N`
//! battles are reduced once to at most `K(K-1)/2` cells, and every later step
//! (graph checks, Newton, bootstrap) costs O(cells), not O(N). Cells are
//! additive, so partial collapses of partitions merge by summing (the
//! map-reduce of DESIGN.md).
//!
//! Paths: unweighted input with a small triangle (`K(K-1)/2 ≤ 2^20`) is
//! counted into dense integer triangles, one per rayon part, then summed;
//! integer sums make the result identical for any thread count. Weighted
//! input, or a large `K`, goes through a sort of pair keys, summing the
//! weights of a cell in row order, again independent of threads.
//! Rejected: a hash map (slower than both, and its order is arbitrary); a
//! one-hot design matrix (N×K memory).

use rayon::prelude::*;

use crate::{invalid, Result};

/// Outcome codes of a battle.
pub const A_WINS: u8 = 0;
pub const B_WINS: u8 = 1;
pub const TIE: u8 = 2;

const DENSE_MAX_CELLS: usize = 1 << 20;

/// Borrowed battle arrays: model indices of the two sides, outcome codes
/// ([`A_WINS`], [`B_WINS`], [`TIE`]) and optional non-negative weights.
#[derive(Clone, Copy, Debug)]
pub struct Battles<'a> {
    pub a: &'a [u32],
    pub b: &'a [u32],
    pub outcome: &'a [u8],
    pub weight: Option<&'a [f64]>,
}

/// The battles between models `i < j`: counts and weights of `[i wins, j
/// wins, ties]`. Unweighted input has `w == n`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub i: u32,
    pub j: u32,
    pub n: [u64; 3],
    pub w: [f64; 3],
}

impl Cell {
    pub fn battles(&self) -> u64 {
        self.n.iter().sum()
    }
}

/// Battles collapsed to cells, sorted by `(i, j)`; only non-empty cells.
#[derive(Clone, Debug, PartialEq)]
pub struct PairCounts {
    pub n_models: usize,
    pub cells: Vec<Cell>,
}

/// Per-model totals: battles (unweighted) and weighted wins, losses, ties.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelTotals {
    pub battles: Vec<u64>,
    pub wins: Vec<f64>,
    pub losses: Vec<f64>,
    pub ties: Vec<f64>,
}

fn check_row(k: usize, bt: &Battles<'_>, r: usize) -> Result<()> {
    let (a, b, o) = (bt.a[r] as usize, bt.b[r] as usize, bt.outcome[r]);
    if a >= k || b >= k {
        return Err(invalid!(
            "row {r}: model index {} out of range (n_models = {k})",
            a.max(b)
        ));
    }
    if a == b {
        return Err(invalid!(
            "row {r}: model {a} battles itself (drop self-battles first)"
        ));
    }
    if o > TIE {
        return Err(invalid!(
            "row {r}: outcome code {o}, expected 0 (a wins), 1 (b wins) or 2 (tie)"
        ));
    }
    if let Some(w) = bt.weight {
        if !(w[r].is_finite() && w[r] >= 0.0) {
            return Err(invalid!(
                "row {r}: weight {} is not a finite non-negative number",
                w[r]
            ));
        }
    }
    Ok(())
}

/// Triangle index of the pair (lo < hi) among `k` models.
fn tri(k: usize, lo: usize, hi: usize) -> usize {
    lo * (2 * k - lo - 1) / 2 + (hi - lo - 1)
}

/// Oriented (lo, hi, slot) of a battle: slot 0 = lo wins, 1 = hi wins, 2 = tie.
fn orient(a: usize, b: usize, o: u8) -> (usize, usize, usize) {
    let (lo, hi, swapped) = if a < b { (a, b, false) } else { (b, a, true) };
    let slot = match (o, swapped) {
        (TIE, _) => 2,
        (A_WINS, false) | (B_WINS, true) => 0,
        _ => 1,
    };
    (lo, hi, slot)
}

impl PairCounts {
    /// Collapse battles among `n_models` models. Errors name the first bad row.
    pub fn from_battles(n_models: usize, bt: &Battles<'_>) -> Result<Self> {
        let n = bt.a.len();
        if bt.b.len() != n || bt.outcome.len() != n || bt.weight.is_some_and(|w| w.len() != n) {
            return Err(invalid!(
                "battle arrays differ in length: a {}, b {}, outcome {}, weight {}",
                n,
                bt.b.len(),
                bt.outcome.len(),
                bt.weight.map_or("none".into(), |w| w.len().to_string())
            ));
        }
        if n_models > u32::MAX as usize {
            return Err(invalid!("n_models {n_models} exceeds 2^32 - 1"));
        }
        let n_cells = n_models * n_models.saturating_sub(1) / 2;
        if bt.weight.is_none() && n_cells <= DENSE_MAX_CELLS {
            Self::dense_unweighted(n_models, bt)
        } else {
            Self::sorted(n_models, bt)
        }
    }

    fn dense_unweighted(k: usize, bt: &Battles<'_>) -> Result<Self> {
        let n = bt.a.len();
        let n_cells = k * k.saturating_sub(1) / 2;
        // Row offsets of the triangle: cell (lo, hi) sits at off[lo] + hi.
        let off: Vec<usize> = (0..k)
            .map(|lo| tri(k, lo, lo + 1).wrapping_sub(lo + 1))
            .collect();
        // u32 counters halve the memory traffic; a part never exceeds 2^32 rows.
        let parts = rayon::current_num_threads()
            .clamp(1, 1 + n / 65_536)
            .max(n.div_ceil(u32::MAX as usize));
        let size = n.div_ceil(parts).max(1);
        let tris: Vec<Vec<[u32; 3]>> = (0..parts)
            .into_par_iter()
            .map(|p| {
                let mut t = vec![[0u32; 3]; n_cells];
                let rows = p * size..((p + 1) * size).min(n);
                let mut clean = true;
                for ((&a, &b), &o) in bt.a[rows.clone()]
                    .iter()
                    .zip(&bt.b[rows.clone()])
                    .zip(&bt.outcome[rows.clone()])
                {
                    let (a, b) = (a as usize, b as usize);
                    if a >= k || b >= k || a == b || o > TIE {
                        clean = false; // found again, with its row, below
                        break;
                    }
                    let (lo, hi) = (a.min(b), a.max(b));
                    // Slot: 2 for a tie, else the winner's side relative to lo.
                    let slot = if o == TIE {
                        2
                    } else {
                        (o ^ u8::from(a > b)) as usize
                    };
                    t[off[lo].wrapping_add(hi)][slot] += 1;
                }
                if !clean {
                    for r in rows {
                        check_row(k, bt, r)?;
                    }
                }
                Ok(t)
            })
            .collect::<Result<_>>()?;
        let mut total = vec![[0u64; 3]; n_cells];
        for t in &tris {
            for (acc, c) in total.iter_mut().zip(t) {
                for s in 0..3 {
                    acc[s] += u64::from(c[s]);
                }
            }
        }
        let mut cells = Vec::new();
        for lo in 0..k {
            for hi in lo + 1..k {
                let c = total[tri(k, lo, hi)];
                if c != [0; 3] {
                    let w = [c[0] as f64, c[1] as f64, c[2] as f64];
                    cells.push(Cell {
                        i: lo as u32,
                        j: hi as u32,
                        n: c,
                        w,
                    });
                }
            }
        }
        Ok(Self { n_models: k, cells })
    }

    fn sorted(k: usize, bt: &Battles<'_>) -> Result<Self> {
        let n = bt.a.len();
        // Key: pair in the high bits, slot in the low two bits, then the row,
        // so summation order within a cell is the row order.
        let mut keys: Vec<(u64, u32)> = (0..n)
            .into_par_iter()
            .map(|r| {
                check_row(k, bt, r)?;
                let (lo, hi, s) = orient(bt.a[r] as usize, bt.b[r] as usize, bt.outcome[r]);
                let row = u32::try_from(r).map_err(|_| invalid!("more than 2^32 battles"))?;
                Ok(((((lo as u64) << 32) | hi as u64) << 2 | s as u64, row))
            })
            .collect::<Result<_>>()?;
        keys.par_sort_unstable();
        let mut cells: Vec<Cell> = Vec::new();
        for (key, row) in keys {
            let (pair, s) = (key >> 2, (key & 3) as usize);
            let (lo, hi) = ((pair >> 32) as u32, (pair & 0xFFFF_FFFF) as u32);
            let w = bt.weight.map_or(1.0, |w| w[row as usize]);
            match cells.last_mut() {
                Some(c) if c.i == lo && c.j == hi => {
                    c.n[s] += 1;
                    c.w[s] += w;
                }
                _ => {
                    let mut c = Cell {
                        i: lo,
                        j: hi,
                        n: [0; 3],
                        w: [0.0; 3],
                    };
                    c.n[s] = 1;
                    c.w[s] = w;
                    cells.push(c);
                }
            }
        }
        Ok(Self { n_models: k, cells })
    }

    /// Total number of battles (unweighted).
    pub fn total_battles(&self) -> u64 {
        self.cells.iter().map(Cell::battles).sum()
    }

    /// Battles, wins, losses and ties per model.
    pub fn totals(&self) -> ModelTotals {
        let k = self.n_models;
        let mut t = ModelTotals {
            battles: vec![0; k],
            wins: vec![0.0; k],
            losses: vec![0.0; k],
            ties: vec![0.0; k],
        };
        for c in &self.cells {
            let (i, j) = (c.i as usize, c.j as usize);
            t.battles[i] += c.battles();
            t.battles[j] += c.battles();
            t.wins[i] += c.w[0];
            t.losses[i] += c.w[1];
            t.wins[j] += c.w[1];
            t.losses[j] += c.w[0];
            t.ties[i] += c.w[2];
            t.ties[j] += c.w[2];
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn battles<'a>(a: &'a [u32], b: &'a [u32], o: &'a [u8]) -> Battles<'a> {
        Battles {
            a,
            b,
            outcome: o,
            weight: None,
        }
    }

    #[test]
    fn collapses_and_orients() {
        // 2 beats 0 as side a, 0 beats 2 as side b, a tie, and 1 beats 0.
        let pc = PairCounts::from_battles(3, &battles(&[2, 2, 0, 1], &[0, 0, 2, 0], &[0, 1, 2, 0]))
            .unwrap();
        assert_eq!(pc.cells.len(), 2);
        assert_eq!(
            (pc.cells[0].i, pc.cells[0].j, pc.cells[0].n),
            (0, 1, [0, 1, 0])
        );
        assert_eq!(
            (pc.cells[1].i, pc.cells[1].j, pc.cells[1].n),
            (0, 2, [1, 1, 1])
        );
        let t = pc.totals();
        assert_eq!(t.battles, vec![4, 1, 3]);
        assert_eq!(t.wins, vec![1.0, 1.0, 1.0]);
        assert_eq!(t.losses, vec![2.0, 0.0, 1.0]);
    }

    #[test]
    fn dense_and_sorted_paths_agree() {
        let n = 5000;
        let a: Vec<u32> = (0..n).map(|r| (r * 7 % 13) as u32).collect();
        let b: Vec<u32> = (0..n)
            .map(|r| ((r * 7 % 13 + 1 + r % 12) % 13) as u32)
            .collect();
        let o: Vec<u8> = (0..n).map(|r| (r % 3) as u8).collect();
        let bt = battles(&a, &b, &o);
        let dense = PairCounts::dense_unweighted(13, &bt).unwrap();
        let sorted = PairCounts::sorted(13, &bt).unwrap();
        assert_eq!(dense, sorted);
        assert_eq!(dense.total_battles(), n as u64);
        let ones = vec![1.0; n];
        let weighted = PairCounts::from_battles(
            13,
            &Battles {
                weight: Some(&ones),
                ..bt
            },
        )
        .unwrap();
        assert_eq!(weighted, dense);
    }

    #[test]
    fn weights_sum_per_cell() {
        let w = [0.5, 2.0, 1.5];
        let bt = Battles {
            a: &[0, 1, 0],
            b: &[1, 0, 1],
            outcome: &[0, 0, 2],
            weight: Some(&w),
        };
        let pc = PairCounts::from_battles(2, &bt).unwrap();
        assert_eq!(pc.cells[0].n, [1, 1, 1]);
        assert_eq!(pc.cells[0].w, [0.5, 2.0, 1.5]);
    }

    #[test]
    fn bad_rows_are_named() {
        let e = PairCounts::from_battles(3, &battles(&[0, 1], &[1, 3], &[0, 0])).unwrap_err();
        assert!(e.to_string().contains("row 1"), "{e}");
        let e = PairCounts::from_battles(3, &battles(&[0, 2], &[1, 2], &[0, 0])).unwrap_err();
        assert!(
            e.to_string().contains("row 1") && e.to_string().contains("itself"),
            "{e}"
        );
        let e = PairCounts::from_battles(3, &battles(&[0], &[1], &[5])).unwrap_err();
        assert!(e.to_string().contains("outcome code 5"), "{e}");
        let w = [f64::NAN];
        let bt = Battles {
            a: &[0],
            b: &[1],
            outcome: &[0],
            weight: Some(&w),
        };
        assert!(PairCounts::from_battles(2, &bt)
            .unwrap_err()
            .to_string()
            .contains("weight"));
        let e = PairCounts::from_battles(3, &battles(&[0], &[1, 2], &[0])).unwrap_err();
        assert!(e.to_string().contains("differ in length"), "{e}");
    }
}
