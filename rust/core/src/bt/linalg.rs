//! Dense symmetric positive definite algebra for the Newton steps and the
//! Hessian covariance: Cholesky factorisation, solve, and inverse.
//!
//! Row-major `n × n` storage; only the lower triangle is read or written.
//! The factorisation is the right-looking blocked Cholesky (Golub & Van
//! Loan 2013, alg. 4.2.11) and the inverse is `L⁻¹` by blocked forward
//! substitution then `L⁻ᵀ L⁻¹` (LAPACK's `potri` = `trtri` + `lauum`), each
//! about `n³/6` multiply-adds. The O(n³) work is arranged as updates of
//! whole contiguous rows by four rows (or columns of a packed panel) at a
//! time, which the compiler vectorises, and split over rows for rayon. Each
//! entry is computed by the same sequence of operations whatever the number
//! of threads, so results are bit-identical for any thread count.
//! Rejected: a LAPACK dependency (a system library for one factorisation of a
//! matrix that is at most a few thousand wide), ndarray (plain slices are the
//! core's convention), and the unblocked dot-product Cholesky this replaces
//! (it streamed all earlier rows from memory once per row).

use rayon::prelude::*;

/// Block size of the panels.
const NB: usize = 64;
/// Rows per task in the parallel row passes.
const ROWS: usize = 32;
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
    // Column blocks outside, row tiles inside: a block's source lines are
    // read from memory once and then from cache by every row tile.
    for c0 in (0..width).step_by(NR) {
        let first = if tri { ps.start.max(c0) } else { ps.start };
        let skip = first - ps.start;
        for r0 in (0..dst.len()).step_by(MR) {
            let rows = MR.min(dst.len() - r0);
            let len = dst[r0..r0 + rows]
                .iter()
                .map(|d| d.len())
                .max()
                .unwrap_or(0);
            if len <= c0 {
                continue;
            }
            let nc = NR.min(len - c0);
            let coef_row = |r: usize| &coef[(r0 + r) * cs + skip..(r0 + r + 1) * cs];
            let acc = if nc == NR {
                tile_rows(rows, coef_row, src, first, c0)
            } else {
                let mut acc = [[0.0; NR]; MR];
                for p in first..ps.end {
                    let s = &src.row(p)[c0..c0 + nc];
                    for (r, row) in acc.iter_mut().enumerate().take(rows) {
                        let a = coef_row(r)[p - first];
                        for (x, y) in row.iter_mut().zip(s) {
                            *x += a * y;
                        }
                    }
                }
                acc
            };
            for (r, row) in acc.iter().enumerate().take(rows) {
                let d = &mut dst[r0 + r];
                let hi = d.len().min(c0 + nc);
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
/// rows; the sums over earlier blocks run in parallel over rows.
fn lower_inverse(l: &[f64], n: usize) -> Vec<f64> {
    let mut w = vec![0.0; n * n];
    for ib in (0..n).step_by(NB) {
        let ie = (ib + NB).min(n);
        let (done, rest) = w.split_at_mut(ib * n);
        let block = &mut rest[..(ie - ib) * n];
        // The sums over earlier blocks, in parallel over rows.
        block
            .par_chunks_mut(n * ROWS)
            .with_min_len(min_len(n))
            .enumerate()
            .for_each(|(t, rows)| {
                let first = ib + t * ROWS;
                let coef: Vec<f64> = (first..first + rows.len() / n)
                    .flat_map(|i| l[i * n..i * n + ib].iter().copied())
                    .collect();
                let mut dst: Vec<&mut [f64]> =
                    rows.chunks_exact_mut(n).map(|row| &mut row[..ib]).collect();
                let src = Rows {
                    data: done,
                    stride: n,
                    first: 0,
                };
                update_rows(&mut dst, &coef, 0..ib, true, src);
            });
        // The sums within the block, row after row.
        for i in ib..ie {
            let (prev, rest) = block.split_at_mut((i - ib) * n);
            let row = &mut rest[..n];
            let coef = &l[i * n + ib..i * n + i];
            let src = Rows {
                data: prev,
                stride: n,
                first: ib,
            };
            update_rows(&mut [&mut row[..i]], coef, ib..i, true, src);
            row[i] = 1.0;
            let inv = 1.0 / l[i * n + i];
            for x in &mut row[..=i] {
                *x *= inv;
            }
        }
    }
    w
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
            let i0 = t * ROWS;
            let coef: Vec<f64> = (i0..i0 + rows.len() / n)
                .flat_map(|i| (i0..n).map(move |k| -wr[k * n + i]))
                .collect();
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
        // L by the textbook recurrence L[i,j] = (A[i,j] - Σ_k L[i,k] L[j,k]) / L[j,j].
        let n = 150;
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

#[cfg(test)]
mod tmp_bench {
    use super::*;
    #[test]
    #[ignore]
    fn bench_linalg() {
        let n: usize = std::env::var("LA_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        let reps: usize = std::env::var("LA_REPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(7);
        let b: Vec<f64> = (0..n * n)
            .map(|t| ((t * 37 % 101) as f64 - 50.0) / 50.0)
            .collect();
        // A = diag + small symmetric: SPD
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = 0.01 * (b[i * n + j] + b[j * n + i]);
            }
            a[i * n + i] += n as f64;
        }
        let (mut tc, mut ti, mut tl) = (f64::MAX, f64::MAX, f64::MAX);
        for _ in 0..reps {
            let mut l = a.clone();
            let t = std::time::Instant::now();
            assert!(cholesky(&mut l, n));
            tc = tc.min(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            let w = lower_inverse(&l, n);
            ti = ti.min(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            let m = cholesky_inverse(&l, n);
            tl = tl.min(t.elapsed().as_secs_f64());
            std::hint::black_box((w, m));
        }
        eprintln!(
            "min: cholesky {:.1} ms, trtri {:.1} ms, potri(trtri+lauum) {:.1} ms",
            tc * 1e3,
            ti * 1e3,
            tl * 1e3
        );
    }
}
