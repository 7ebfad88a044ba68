//! Dense symmetric positive definite algebra for the Newton steps and the
//! Hessian covariance: Cholesky factorisation, solve, and inverse.
//!
//! Row-major `n × n` storage; only the lower triangle is read or written.
//! The factorisation is the right-looking blocked Cholesky (Golub & Van
//! Loan 2013, alg. 4.2.11) and the inverse is `L⁻¹` by blocks of rows (the
//! diagonal blocks inverted, as LAPACK's `trtri` does) then `L⁻ᵀ L⁻¹`
//! (`lauum`): about `n³/6` multiply-adds each. All O(n³) work goes through
//! one kernel, [`update_rows`], which sums a 4×8 tile of products in
//! registers (eight 4-lane accumulators; a 256-bit build of the same code is
//! chosen at run time when the CPU has AVX, with bit-identical results since
//! Rust never fuses or reorders floating point), and whose callers split
//! rows over rayon. Each entry is computed by the same sequence of
//! operations whatever the number of threads, so results are bit-identical
//! for any thread count. Matrices below 256 wide (the bootstrap's rounds)
//! factor unblocked on the calling thread.
//! Rejected: a LAPACK dependency (a system library for one factorisation of a
//! matrix that is at most a few thousand wide), ndarray (plain slices are the
//! core's convention), fused multiply-adds (twice the peak, but results
//! would then differ between machines with and without FMA), and the
//! unblocked dot-product Cholesky this replaces for large `n` (it streamed
//! all earlier rows from memory once per row: 5x slower at `n = 1000`).

use rayon::prelude::*;

/// Block size of the panels.
const NB: usize = 64;
/// Rows per task in the parallel row passes.
const ROWS: usize = 32;
/// Rows per task where a pass has only a block's rows to share out.
const TILE_ROWS: usize = 8;
/// Below this size a pass runs on the calling thread (the bootstrap's
/// rounds, already parallel, factor small matrices).
const PAR_FROM: usize = 256;

/// Fewest tasks rayon may split a pass over rows of an `n`-wide matrix
/// into: all of them (run serially) when `n` is small.
fn min_len(n: usize) -> usize {
    if n < PAR_FROM {
        usize::MAX
    } else {
        1
    }
}

/// Dot product of two equal-length slices with four accumulators.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Rows and columns of the register tile of [`update_rows`].
const MR: usize = 4;
const NR: usize = 8;

/// Source rows of [`update_rows`]: row `p` starts at `(p − first) · stride`.
#[derive(Clone, Copy)]
struct Rows<'a> {
    data: &'a [f64],
    stride: usize,
    first: usize,
}

impl<'a> Rows<'a> {
    fn row(&self, p: usize) -> &'a [f64] {
        &self.data[(p - self.first) * self.stride..]
    }
}

/// `Σ_q coef[r][q] · src.row(p0 + q)[c0 + c]` for an R×8 tile, summed in
/// increasing `q` in registers: two 4-lane accumulators per row.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `q` and `r` index several arrays at once
fn tile_body<const R: usize>(
    coef: [&[f64]; R],
    src: Rows<'_>,
    p0: usize,
    c0: usize,
) -> [[f64; NR]; R] {
    let count = coef[0].len();
    let k = coef.map(|k| &k[..count]);
    let mut lo = [[0.0f64; 4]; R];
    let mut hi = [[0.0f64; 4]; R];
    let base = (p0 - src.first) * src.stride + c0;
    for q in 0..count {
        let at = base + q * src.stride;
        let s: &[f64; NR] = src.data[at..at + NR].try_into().expect("NR columns");
        for r in 0..R {
            let a = k[r][q];
            for l in 0..4 {
                lo[r][l] += a * s[l];
                hi[r][l] += a * s[4 + l];
            }
        }
    }
    let mut acc = [[0.0; NR]; R];
    for r in 0..R {
        acc[r][..4].copy_from_slice(&lo[r]);
        acc[r][4..].copy_from_slice(&hi[r]);
    }
    acc
}

/// [`tile_body`] compiled for 256-bit vectors. Each entry is the same
/// sequence of operations (Rust never fuses or reassociates floating
/// point), so the result is bit-identical to the baseline build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn tile_avx<const R: usize>(
    coef: [&[f64]; R],
    src: Rows<'_>,
    p0: usize,
    c0: usize,
) -> [[f64; NR]; R] {
    tile_body(coef, src, p0, c0)
}

fn tile<const R: usize>(coef: [&[f64]; R], src: Rows<'_>, p0: usize, c0: usize) -> [[f64; NR]; R] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the running CPU supports AVX, checked just above.
        return unsafe { tile_avx(coef, src, p0, c0) };
    }
    tile_body(coef, src, p0, c0)
}

/// The first `rows` rows of a tile, by the kernel of that height.
fn tile_rows<'a>(
    rows: usize,
    coef_row: impl Fn(usize) -> &'a [f64],
    src: Rows<'_>,
    p0: usize,
    c0: usize,
) -> [[f64; NR]; MR] {
    let mut acc = [[0.0; NR]; MR];
    match rows {
        1 => acc[..1].copy_from_slice(&tile([0].map(coef_row), src, p0, c0)),
        2 => acc[..2].copy_from_slice(&tile([0, 1].map(coef_row), src, p0, c0)),
        3 => acc[..3].copy_from_slice(&tile([0, 1, 2].map(coef_row), src, p0, c0)),
        _ => acc = tile([0, 1, 2, 3].map(coef_row), src, p0, c0),
    }
    acc
}

/// `dst[r][c] -= Σ_{p ∈ ps} coef[r][p − ps.start] · src(p)[c]`, each
/// destination row over its own length (`coef` row-major, `ps.len()` per
/// row; every source at least as long as the longest destination).
///
/// The work goes in 4×8 tiles whose sums stay in registers, so a multiply-add
/// costs a quarter of a load instead of a load and a store. Each entry is
/// the sum over `p` in increasing order, subtracted once, whatever the
/// tiling and thread count. With `tri`, source `p` is zero beyond column
/// `p` (rows of a lower triangle): those products are exactly zero and
/// skipped, which leaves every sum unchanged.
fn update_rows(
    dst: &mut [&mut [f64]],
    coef: &[f64],
    ps: std::ops::Range<usize>,
    tri: bool,
    src: Rows<'_>,
) {
    let cs = ps.len();
    let width = dst.iter().map(|d| d.len()).max().unwrap_or(0);
    let mut pack = Vec::with_capacity(cs * NR);
    // Column blocks outside, row tiles inside. Each block's source columns
    // are first copied into one contiguous strip (zero-padded to NR): the
    // rows of a matrix lie a page apart, and a tile reading one line from
    // each of hundreds of pages misses the TLB on every line.
    for c0 in (0..width).step_by(NR) {
        let first = if tri { ps.start.max(c0) } else { ps.start };
        let skip = first - ps.start;
        let nc = NR.min(width - c0);
        pack.clear();
        pack.resize((ps.end - first) * NR, 0.0);
        for (strip, p) in pack.chunks_exact_mut(NR).zip(first..ps.end) {
            let row = &src.row(p)[c0..];
            if nc == NR {
                // Fixed-size copies, inlined (a memcpy call per line cost more).
                let to: &mut [f64; NR] = strip.try_into().expect("NR columns");
                *to = row[..NR].try_into().expect("NR columns");
            } else {
                strip[..nc].copy_from_slice(&row[..nc]);
            }
        }
        let strip = Rows {
            data: &pack,
            stride: NR,
            first,
        };
        for r0 in (0..dst.len()).step_by(MR) {
            let rows = MR.min(dst.len() - r0);
            let coef_row = |r: usize| &coef[(r0 + r) * cs + skip..(r0 + r + 1) * cs];
            let acc = tile_rows(rows, coef_row, strip, first, 0);
            for (r, row) in acc.iter().enumerate().take(rows) {
                let d = &mut dst[r0 + r];
                let hi = d.len().min(c0 + NR);
                for c in c0..hi {
                    d[c] -= row[c - c0];
                }
            }
        }
    }
}

/// Factor the diagonal block (rows and columns `kb..ke`, already updated by
/// the earlier panels) in place; false on a non-positive pivot.
fn factor_diagonal_block(a: &mut [f64], n: usize, kb: usize, ke: usize) -> bool {
    for i in kb..ke {
        let (done, rest) = a.split_at_mut(i * n);
        let row_i = &mut rest[..n];
        for j in kb..i {
            let row_j = &done[j * n..j * n + j + 1];
            let s = row_i[j] - dot(&row_i[kb..j], &row_j[kb..j]);
            row_i[j] = s / row_j[j];
        }
        let d = row_i[i] - dot(&row_i[kb..i], &row_i[kb..i]);
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        row_i[i] = d.sqrt();
    }
    true
}

/// Overwrite the lower triangle of `a` with its Cholesky factor `L`
/// (`a = L Lᵀ`). Returns false when a pivot is not positive (the matrix is
/// not numerically positive definite); `a` is then garbage.
pub(crate) fn cholesky(a: &mut [f64], n: usize) -> bool {
    if n < PAR_FROM {
        // Small (the bootstrap's rounds): the blocks would cost more than
        // they save.
        return factor_diagonal_block(a, n, 0, n);
    }
    let mut panel = Vec::new();
    for kb in (0..n).step_by(NB) {
        let ke = (kb + NB).min(n);
        if !factor_diagonal_block(a, n, kb, ke) {
            return false;
        }
        let (top, below) = a.split_at_mut(ke * n);
        let diag = &top[kb * n..];
        // Panel: L[i, kb..ke] = A[i, kb..ke] L[kb..ke, kb..ke]⁻ᵀ, eight
        // columns at a time: the sums over earlier columns as tiles against
        // the diagonal block transposed, then a small substitution.
        let nb = ke - kb;
        let mut diag_t = vec![0.0; nb * nb];
        for j in 0..nb {
            for q in 0..=j {
                diag_t[q * nb + j] = diag[j * n + kb + q];
            }
        }
        below
            .par_chunks_mut(n * ROWS)
            .with_min_len(min_len(n))
            .for_each(|rows| {
                for sb in (kb..ke).step_by(NR) {
                    let se = (sb + NR).min(ke);
                    if sb > kb {
                        let coef: Vec<f64> = rows
                            .chunks_exact(n)
                            .flat_map(|row| row[kb..sb].iter().copied())
                            .collect();
                        let mut dst: Vec<&mut [f64]> = rows
                            .chunks_exact_mut(n)
                            .map(|row| &mut row[sb..se])
                            .collect();
                        let src = Rows {
                            data: &diag_t[sb - kb..],
                            stride: nb,
                            first: kb,
                        };
                        update_rows(&mut dst, &coef, kb..sb, false, src);
                    }
                    for row in rows.chunks_exact_mut(n) {
                        for j in sb..se {
                            let lj = &diag[(j - kb) * n..];
                            row[j] = (row[j] - dot(&row[sb..j], &lj[sb..j])) / lj[j];
                        }
                    }
                }
            });
        // Pack the panel transposed, so the trailing update reads rows.
        let w = n - ke;
        panel.clear();
        panel.resize((ke - kb) * w, 0.0);
        for (jj, row) in below.chunks_exact(n).enumerate() {
            for p in kb..ke {
                panel[(p - kb) * w + jj] = row[p];
            }
        }
        // Trailing update: A[i, ke..=i] -= L[i, kb..ke] L[ke..=i, kb..ke]ᵀ.
        below
            .par_chunks_mut(n * ROWS)
            .with_min_len(min_len(n))
            .enumerate()
            .for_each(|(t, rows)| {
                let mut coef = Vec::with_capacity(ROWS * (ke - kb));
                let mut dst = Vec::with_capacity(ROWS);
                for (r, row) in rows.chunks_exact_mut(n).enumerate() {
                    let (left, right) = row.split_at_mut(ke);
                    coef.extend_from_slice(&left[kb..ke]);
                    dst.push(&mut right[..=t * ROWS + r]);
                }
                let src = Rows {
                    data: &panel,
                    stride: w,
                    first: 0,
                };
                update_rows(&mut dst, &coef, 0..ke - kb, false, src);
            });
    }
    true
}

/// Solve `L Lᵀ x = b` in place, `l` from [`cholesky`].
pub(crate) fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let row = &l[i * n..i * n + i];
        b[i] = (b[i] - dot(row, &b[..i])) / l[i * n + i];
    }
    for i in (0..n).rev() {
        b[i] /= l[i * n + i];
        let bi = b[i];
        for k in 0..i {
            b[k] -= l[i * n + k] * bi;
        }
    }
}

/// `L⁻¹` (lower triangular, zero above the diagonal), `l` from
/// [`cholesky`]: `L[i,i] W[i,:] = e_i − Σ_{k<i} L[i,k] W[k,:]`, by blocks of
/// rows, right-looking like the factorisation: once a block of rows of `W`
/// is final, its terms are subtracted from every later row at once (in
/// parallel over rows, the block's strips staying in L1), so each row holds
/// `−Σ_{k<ib} L[i,k] W[k,:]` when its own block comes.
pub(crate) fn lower_inverse(l: &[f64], n: usize) -> Vec<f64> {
    let mut w = vec![0.0; n * n];
    for ib in (0..n).step_by(NB) {
        let ie = (ib + NB).min(n);
        let nb = ie - ib;
        let (top, below) = w.split_at_mut(ie * n);
        let block = &mut top[ib * n..];
        // Within the block: W[blk, ..ib] = L[blk, blk]⁻¹ (−Σ above), a product
        // rather than a substitution row after row (LAPACK's trtri inverts
        // its diagonal blocks alike).
        let inv = diagonal_block_inverse(l, n, ib, ie);
        if ib > 0 {
            let sums: Vec<f64> = block
                .chunks_exact(n)
                .flat_map(|row| row[..ib].iter().copied())
                .collect();
            let neg: Vec<f64> = inv.iter().map(|v| -v).collect();
            block
                .par_chunks_mut(n * TILE_ROWS)
                .with_min_len(min_len(n))
                .enumerate()
                .for_each(|(t, rows)| {
                    let mut dst: Vec<&mut [f64]> = rows
                        .chunks_exact_mut(n)
                        .map(|row| {
                            row[..ib].fill(0.0);
                            &mut row[..ib]
                        })
                        .collect();
                    let first = t * TILE_ROWS;
                    let coef = &neg[first * nb..(first + dst.len()) * nb];
                    let src = Rows {
                        data: &sums,
                        stride: ib,
                        first: 0,
                    };
                    update_rows(&mut dst, coef, 0..nb, false, src);
                });
        }
        for (r, row) in block.chunks_exact_mut(n).enumerate() {
            row[ib..ie].copy_from_slice(&inv[r * nb..(r + 1) * nb]);
        }
        // Every later row: W-row sums -= L[i, blk] W[blk, ..ie].
        let done: &[f64] = block;
        below
            .par_chunks_mut(n * ROWS)
            .with_min_len(min_len(n))
            .enumerate()
            .for_each(|(t, rows)| {
                let first = ie + t * ROWS;
                let coef: Vec<f64> = (first..first + rows.len() / n)
                    .flat_map(|i| l[i * n + ib..i * n + ie].iter().copied())
                    .collect();
                let mut dst: Vec<&mut [f64]> =
                    rows.chunks_exact_mut(n).map(|row| &mut row[..ie]).collect();
                let src = Rows {
                    data: done,
                    stride: n,
                    first: ib,
                };
                update_rows(&mut dst, &coef, ib..ie, true, src);
            });
    }
    w
}

/// `L[ib..ie, ib..ie]⁻¹` (lower triangular, row-major `nb × nb`) by
/// substitution, a row at a time: `L[i,i] X[i,:] = e_i − Σ_{q<i} L[i,q] X[q,:]`.
fn diagonal_block_inverse(l: &[f64], n: usize, ib: usize, ie: usize) -> Vec<f64> {
    let nb = ie - ib;
    let mut x = vec![0.0; nb * nb];
    for i in 0..nb {
        let li = &l[(ib + i) * n + ib..(ib + i) * n + ie];
        let (done, rest) = x.split_at_mut(i * nb);
        let row = &mut rest[..nb];
        row[i] = 1.0;
        for (q, &a) in li[..i].iter().enumerate() {
            for (r, v) in row[..=q].iter_mut().zip(&done[q * nb..=q * nb + q]) {
                *r -= a * v;
            }
        }
        let inv = 1.0 / li[i];
        for r in &mut row[..=i] {
            *r *= inv;
        }
    }
    x
}

/// `(L Lᵀ)⁻¹` as a full symmetric row-major matrix, `l` from [`cholesky`].
pub(crate) fn cholesky_inverse(l: &[f64], n: usize) -> Vec<f64> {
    let w = lower_inverse(l, n);
    // A⁻¹ = Wᵀ W: row i of its lower triangle is Σ_{k≥i} W[k,i] W[k, ..=i].
    // A task's rows share each W row it reads; W[k,i] = 0 for k < i, so
    // starting every row of a task at its first row adds only zeros.
    let wr = &w[..];
    let mut out = vec![0.0; n * n];
    out.par_chunks_mut(n * ROWS)
        .with_min_len(min_len(n))
        .enumerate()
        .for_each(|(t, rows)| {
            let (i0, nr) = (t * ROWS, rows.len() / n);
            // coef[r][k − i0] = −W[k, i0 + r], gathered a row of W at a time
            // (a column at a time would touch a new page per entry).
            let cs = n - i0;
            let mut coef = vec![0.0; nr * cs];
            for k in i0..n {
                for (r, &v) in wr[k * n + i0..k * n + i0 + nr].iter().enumerate() {
                    coef[r * cs + (k - i0)] = -v;
                }
            }
            let mut dst: Vec<&mut [f64]> = rows
                .chunks_exact_mut(n)
                .enumerate()
                .map(|(r, row)| &mut row[..=i0 + r])
                .collect();
            let src = Rows {
                data: wr,
                stride: n,
                first: 0,
            };
            update_rows(&mut dst, &coef, i0..n, false, src);
        });
    // Mirror the lower triangle into the upper one, by square tiles so the
    // column reads stay in cache.
    const T: usize = 32;
    for ib in (0..n).step_by(T) {
        for jb in (0..=ib).step_by(T) {
            for i in ib..(ib + T).min(n) {
                for j in jb..(jb + T).min(i) {
                    out[j * n + i] = out[i * n + j];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize) -> Vec<f64> {
        // A = B Bᵀ + n I with a fixed pseudo-random B.
        let b: Vec<f64> = (0..n * n)
            .map(|t| ((t * 37 % 101) as f64 - 50.0) / 50.0)
            .collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>();
            }
            a[i * n + i] += n as f64;
        }
        a
    }

    #[test]
    fn solve_and_inverse_recover_identity() {
        // Sizes below, at and across the block size (several panels).
        for n in [1, 2, 5, 17, 64, 65, 150] {
            let a = spd(n);
            let mut l = a.clone();
            assert!(cholesky(&mut l, n));
            let x_true: Vec<f64> = (0..n).map(|i| i as f64 - 3.5).collect();
            let mut b: Vec<f64> = (0..n)
                .map(|i| dot(&a[i * n..(i + 1) * n], &x_true))
                .collect();
            cholesky_solve(&l, n, &mut b);
            for (x, t) in b.iter().zip(&x_true) {
                assert!((x - t).abs() < 1e-10, "n={n}");
            }
            let inv = cholesky_inverse(&l, n);
            for i in 0..n {
                for j in 0..n {
                    let e: f64 = (0..n).map(|k| a[i * n + k] * inv[k * n + j]).sum();
                    assert!((e - f64::from(u8::from(i == j))).abs() < 1e-10);
                }
            }
        }
    }

    #[test]
    fn blocked_factor_matches_the_unblocked_recurrence() {
        // L by the textbook recurrence L[i,j] = (A[i,j] - Σ_k L[i,k] L[j,k]) / L[j,j],
        // at a size that takes the blocked, parallel path.
        let n = 300;
        let a = spd(n);
        let mut r = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let s: f64 = (0..j).map(|k| r[i * n + k] * r[j * n + k]).sum();
                r[i * n + j] = if i == j {
                    (a[i * n + i] - s).sqrt()
                } else {
                    (a[i * n + j] - s) / r[j * n + j]
                };
            }
        }
        let mut l = a.clone();
        assert!(cholesky(&mut l, n));
        for i in 0..n {
            for j in 0..=i {
                assert!((l[i * n + j] - r[i * n + j]).abs() < 1e-12 * r[j * n + j].abs().max(1.0));
            }
        }
    }

    #[test]
    fn same_bits_for_any_thread_count() {
        // Above PAR_FROM, so the passes really split over threads.
        let n = 300;
        let a = spd(n);
        let run = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| {
                    let mut l = a.clone();
                    assert!(cholesky(&mut l, n));
                    cholesky_inverse(&l, n)
                })
        };
        let bits = |v: Vec<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(run(1)), bits(run(3)));
    }

    #[test]
    fn rejects_indefinite() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert!(!cholesky(&mut a, 2));
    }
}
