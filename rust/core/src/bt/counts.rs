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
//! Paths: unweighted input with `K ≤ 2048` (and under 2^32 rows) is counted
//! by rayon parts, each into its own byte per (oriented pair, slot): a
//! 1.5 MB triangle at `K = 1000`, small enough to stay in cache; the row
//! orients its battle without branches (min, max and a bit trick on the
//! outcome). A byte that wraps records its position (256 more battles). The
//! parts' triangles are then summed element-wise into u32 counts.
//! Integer sums make the result identical for any thread count. Weighted
//! input, or a large `K`, goes through a sort of pair keys, summing the
//! weights of a cell in row order, again independent of threads.
//! Rejected: a hash map (slower than both, and its order is arbitrary); a
//! one-hot design matrix (N×K memory); u32 counters per pair and outcome (a
//! 6 MB triangle per part at `K = 1000` that misses cache on every row, and
//! an orientation step per row: twice the time of bytes); a byte square
//! per ordered pair and raw outcome (3 MB at `K = 1000`, no orientation
//! per row, but twice the cache footprint and a transposing fold: about
//! 1.4x the time of the byte triangle on the 2-core machine);
//! radix-bucketing the rows first (a second pass over N, no faster here).

use rayon::prelude::*;

use crate::{invalid, Result};

/// Outcome codes of a battle.
pub const A_WINS: u8 = 0;
pub const B_WINS: u8 = 1;
pub const TIE: u8 = 2;

/// Largest `K` counted through byte triangles (3K(K−1)/2 bytes per part,
/// 6.3 MB at the limit).
const BYTE_MAX_MODELS: usize = 2048;

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

/// Cells per task of [`PairCounts::totals`].
const TOTALS_CHUNK: usize = 1 << 16;

impl ModelTotals {
    fn zeros(k: usize) -> Self {
        ModelTotals {
            battles: vec![0; k],
            wins: vec![0.0; k],
            losses: vec![0.0; k],
            ties: vec![0.0; k],
        }
    }

    fn add_cells(&mut self, cells: &[Cell]) {
        for c in cells {
            let (i, j) = (c.i as usize, c.j as usize);
            self.battles[i] += c.battles();
            self.battles[j] += c.battles();
            self.wins[i] += c.w[0];
            self.losses[i] += c.w[1];
            self.wins[j] += c.w[1];
            self.losses[j] += c.w[0];
            self.ties[i] += c.w[2];
            self.ties[j] += c.w[2];
        }
    }
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

/// What the Python layer checks before a fit, from one parallel pass over
/// the battle arrays: the largest index on each side (`None` when empty),
/// the number of self-battles and the largest outcome code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scan {
    pub max_a: Option<u32>,
    pub max_b: Option<u32>,
    pub n_self: u64,
    pub max_outcome: Option<u8>,
}

impl Scan {
    fn empty() -> Self {
        Scan {
            max_a: None,
            max_b: None,
            n_self: 0,
            max_outcome: None,
        }
    }

    fn merge(self, o: Scan) -> Scan {
        Scan {
            max_a: self.max_a.max(o.max_a),
            max_b: self.max_b.max(o.max_b),
            n_self: self.n_self + o.n_self,
            max_outcome: self.max_outcome.max(o.max_outcome),
        }
    }
}

/// Rows per task of [`scan`].
const SCAN_CHUNK: usize = 1 << 18;

/// One pass over `a`, `b` and `outcome` (equal lengths, else an error)
/// replacing five whole-array reductions in numpy.
pub fn scan(a: &[u32], b: &[u32], outcome: &[u8]) -> Result<Scan> {
    if a.len() != b.len() || a.len() != outcome.len() {
        return Err(invalid!(
            "battle arrays differ in length: a {}, b {}, outcome {}",
            a.len(),
            b.len(),
            outcome.len()
        ));
    }
    let part = |r: std::ops::Range<usize>| {
        let (a, b, o) = (&a[r.clone()], &b[r.clone()], &outcome[r]);
        let (mut ma, mut mb, mut mo, mut same) = (0u32, 0u32, 0u8, 0u64);
        for ((&x, &y), &z) in a.iter().zip(b).zip(o) {
            ma = ma.max(x);
            mb = mb.max(y);
            mo = mo.max(z);
            same += u64::from(x == y);
        }
        let some = !a.is_empty();
        Scan {
            max_a: some.then_some(ma),
            max_b: some.then_some(mb),
            n_self: same,
            max_outcome: some.then_some(mo),
        }
    };
    let n = a.len();
    Ok((0..n.div_ceil(SCAN_CHUNK))
        .into_par_iter()
        .map(|c| part(c * SCAN_CHUNK..((c + 1) * SCAN_CHUNK).min(n)))
        .reduce(Scan::empty, Scan::merge))
}

/// Battles of one part of the rows by oriented pair and slot: a byte per
/// `(lo, hi, slot)` at `3 · tri(lo, hi) + slot`, and the positions whose
/// byte wrapped past 255 (each stands for 256 more battles).
struct ByteTriangle {
    bytes: Vec<u8>,
    spills: Vec<u32>,
}

/// Entries of the triangle summed per task in the fold.
const FOLD_CHUNK: usize = 1 << 16;

/// Sum the parts' byte triangles into `[lo wins, hi wins, ties]` per pair
/// (u32: the caller routes more than 2^32 rows elsewhere): a contiguous,
/// element-wise sum, then the spills.
fn fold_triangles(k: usize, parts: &[ByteTriangle]) -> Vec<u32> {
    let len = 3 * (k * k.saturating_sub(1) / 2);
    let mut out = vec![0u32; len];
    out.par_chunks_mut(FOLD_CHUNK)
        .enumerate()
        .for_each(|(c, dst)| {
            let span = c * FOLD_CHUNK..c * FOLD_CHUNK + dst.len();
            for part in parts {
                for (d, s) in dst.iter_mut().zip(&part.bytes[span.clone()]) {
                    *d += u32::from(*s);
                }
            }
        });
    for part in parts {
        for &at in &part.spills {
            out[at as usize] += 256;
        }
    }
    out
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
        if bt.weight.is_none() && n_models <= BYTE_MAX_MODELS && n <= u32::MAX as usize {
            Self::dense_unweighted(n_models, bt)
        } else {
            Self::sorted(n_models, bt)
        }
    }

    /// Count one part of the rows into a byte triangle; None when a row is
    /// bad (the caller then finds it, with its row number).
    fn count_part(
        k: usize,
        bt: &Battles<'_>,
        rows: std::ops::Range<usize>,
    ) -> Option<ByteTriangle> {
        let mut part = ByteTriangle {
            bytes: vec![0u8; 3 * (k * k.saturating_sub(1) / 2)],
            spills: Vec::new(),
        };
        let (a, b, o) = (&bt.a[rows.clone()], &bt.b[rows.clone()], &bt.outcome[rows]);
        for ((&a, &b), &o) in a.iter().zip(b).zip(o) {
            let (a, b) = (a as usize, b as usize);
            if a >= k || b >= k || a == b || o > TIE {
                return None;
            }
            // Oriented without branches: when a > b the win slots swap
            // (0 <-> 1) and a tie (2, whose bit 1 is set) stays.
            let (lo, hi) = (a.min(b), a.max(b));
            let swap = u8::from(a > b);
            let slot = o ^ (swap & (1 ^ (o >> 1)));
            let at = 3 * tri(k, lo, hi) + slot as usize;
            let (v, carry) = part.bytes[at].overflowing_add(1);
            part.bytes[at] = v;
            if carry {
                part.spills.push(at as u32);
            }
        }
        Some(part)
    }

    fn dense_unweighted(k: usize, bt: &Battles<'_>) -> Result<Self> {
        let n = bt.a.len();
        let parts = rayon::current_num_threads().clamp(1, 1 + n / 262_144);
        let size = n.div_ceil(parts).max(1);
        let triangles: Vec<ByteTriangle> = (0..parts)
            .into_par_iter()
            .map(|p| {
                let rows = (p * size).min(n)..((p + 1) * size).min(n);
                match Self::count_part(k, bt, rows.clone()) {
                    Some(part) => Ok(part),
                    None => {
                        for r in rows {
                            check_row(k, bt, r)?;
                        }
                        Err(invalid!("unreachable: a bad row was not found"))
                    }
                }
            })
            .collect::<Result<_>>()?;
        let tri_counts = fold_triangles(k, &triangles);
        drop(triangles);
        // The non-empty pairs of each row `lo` of the triangle, rows in
        // parallel; rayon's collect keeps the rows in order.
        let tri_counts = &tri_counts;
        let cells = (0..k)
            .into_par_iter()
            .flat_map_iter(|lo| {
                // Row `lo` starts at pair (lo, lo + 1); the formula holds
                // for lo = k - 1 too (an empty row at the end).
                let start = 3 * tri(k, lo, lo + 1);
                let row = &tri_counts[start..start + 3 * (k - lo - 1)];
                row.chunks_exact(3)
                    .zip(lo + 1..k)
                    .filter(|(t, _)| *t != [0; 3])
                    .map(move |(t, hi)| {
                        let c = [u64::from(t[0]), u64::from(t[1]), u64::from(t[2])];
                        Cell {
                            i: lo as u32,
                            j: hi as u32,
                            n: c,
                            w: [c[0] as f64, c[1] as f64, c[2] as f64],
                        }
                    })
            })
            .collect();
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
        // Fixed chunks of cells, their partial totals added in chunk order:
        // the same sums whatever the number of threads.
        let parts: Vec<ModelTotals> = self
            .cells
            .par_chunks(TOTALS_CHUNK)
            .map(|cells| {
                let mut t = ModelTotals::zeros(k);
                t.add_cells(cells);
                t
            })
            .collect();
        let mut t = ModelTotals::zeros(k);
        for p in &parts {
            for u in 0..k {
                t.battles[u] += p.battles[u];
                t.wins[u] += p.wins[u];
                t.losses[u] += p.losses[u];
                t.ties[u] += p.ties[u];
            }
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
    fn byte_counters_spill_and_merge_exactly() {
        // Far more than 255 battles per ordered pair and outcome over two
        // parts (byte counters wrap many times, parts merge), then a K that
        // is not a multiple of the fold's tile height.
        for (k, n) in [(5usize, 400_000usize), (37, 60_000)] {
            let a: Vec<u32> = (0..n).map(|r| (r * 7 % k) as u32).collect();
            let b: Vec<u32> = (0..n)
                .map(|r| ((r * 7 % k + 1 + r % (k - 1)) % k) as u32)
                .collect();
            let o: Vec<u8> = (0..n).map(|r| (r / 3 % 3) as u8).collect();
            let bt = battles(&a, &b, &o);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap();
            let dense = pool
                .install(|| PairCounts::dense_unweighted(k, &bt))
                .unwrap();
            assert_eq!(dense, PairCounts::sorted(k, &bt).unwrap(), "k = {k}");
            assert_eq!(dense.total_battles(), n as u64);
        }
    }

    #[test]
    fn totals_in_chunks_equal_one_pass_on_any_thread_count() {
        // 400 models: 79,800 pairs, more than one chunk of the totals.
        let (k, n) = (400usize, 300_000usize);
        let a: Vec<u32> = (0..n).map(|r| (r * 7919 % k) as u32).collect();
        let b: Vec<u32> = (0..n)
            .map(|r| ((r * 7919 % k + 1 + r * 31 % (k - 1)) % k) as u32)
            .collect();
        let o: Vec<u8> = (0..n).map(|r| (r * 13 % 3) as u8).collect();
        let w: Vec<f64> = (0..n).map(|r| 0.1 + (r % 17) as f64 / 7.0).collect();
        for weight in [None, Some(&w[..])] {
            let bt = Battles {
                weight,
                ..battles(&a, &b, &o)
            };
            let pc = PairCounts::from_battles(k, &bt).unwrap();
            assert!(pc.cells.len() > TOTALS_CHUNK);
            let mut one_pass = ModelTotals::zeros(k);
            one_pass.add_cells(&pc.cells);
            let chunked: Vec<ModelTotals> = [1, 3]
                .iter()
                .map(|&t| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(t)
                        .build()
                        .unwrap();
                    pool.install(|| pc.totals())
                })
                .collect();
            assert_eq!(chunked[0], chunked[1], "the same on 1 and 3 threads");
            let t = &chunked[0];
            assert_eq!(t.battles, one_pass.battles);
            assert_eq!(t.battles.iter().sum::<u64>(), 2 * n as u64);
            for (x, y) in [
                (&t.wins, &one_pass.wins),
                (&t.losses, &one_pass.losses),
                (&t.ties, &one_pass.ties),
            ] {
                for (p, q) in x.iter().zip(y) {
                    let exact = weight.is_none();
                    assert!(if exact {
                        p == q
                    } else {
                        (p - q).abs() <= 1e-12 * q.abs()
                    });
                }
            }
        }
    }

    #[test]
    fn scan_matches_a_plain_loop() {
        let n = 600_000usize;
        let a: Vec<u32> = (0..n).map(|r| (r * 7919 % 1013) as u32).collect();
        let b: Vec<u32> = (0..n).map(|r| (r * 104_729 % 997) as u32).collect();
        let o: Vec<u8> = (0..n).map(|r| (r % 3) as u8).collect();
        let s = scan(&a, &b, &o).unwrap();
        assert_eq!(s.max_a, a.iter().max().copied());
        assert_eq!(s.max_b, b.iter().max().copied());
        assert_eq!(s.max_outcome, Some(2));
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count() as u64;
        assert!(same > 0);
        assert_eq!(s.n_self, same);
        assert_eq!(scan(&[], &[], &[]).unwrap(), Scan::empty());
        assert!(scan(&[1], &[], &[0]).is_err());
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
