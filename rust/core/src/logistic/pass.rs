//! Row-block passes of the logistic engine: the loops that touch every row.
//!
//! Method. A leaf of the reduction tree (`CHUNK` positions) is processed in
//! blocks of up to `Block::cap` rows with positive weight, gathered and
//! converted once to f64 into a buffer whose rows are padded with zeros to a
//! multiple of `LANES` columns. On a block, one pass computes the margins
//! eta = X beta (eight accumulators per row); then, per row, one exponential
//! e = exp(-|eta|) and one ln(1 + e), from which the loss, the probability
//! and its variance all follow; then the gradient X^T r, eight columns at a
//! time with the sums over the block held in registers; and the data
//! Hessian X^T W X as a rank-`len` update of its upper triangle, tile by
//! tile: a 4 x 8 tile is accumulated over all the block's rows in registers
//! and added to the leaf's matrix once (the layout of a GEMM micro-kernel,
//! Goto & van de Geijn, ACM TOMS 34(3), 2008). At p = 64 a Newton pass is
//! about 2,300 multiply-adds per row, against 4,096 for the full matrix.
//!
//! The exponential and the logarithm are evaluated here, branch-free, by
//! additive argument reduction (Cody & Waite, *Software Manual for the
//! Elementary Functions*, 1980) and Taylor series, so that the per-row loop
//! vectorises; each is within 2 ulp of the C library's (the unit tests
//! below measure it). See Muller, *Elementary Functions: Algorithms and
//! Implementation*, 3rd ed., 2016, for both reductions.
//!
//! Determinism. Every sum runs in an order fixed by the data alone (rows in
//! position order, fixed tiles, fixed accumulators), so results do not
//! depend on the thread count. The kernels are compiled twice, for the
//! baseline target and with AVX2, and picked at run time; Rust never fuses a
//! multiply and an add nor reassociates, so the two give the same bits.
//!
//! Rejected: the C library's exp and log1p (scalar calls that kept the
//! per-row loop from vectorising: half of a pass at p = 8); a per-row
//! rank-one update of the packed triangle (it loads and stores the whole
//! Hessian for every row: four times slower at p = 64); the `matrixmultiply`
//! GEMM (it computes both triangles and packs its operands on every call,
//! which costs more than it saves at p <= 32); FMA instructions (a second,
//! machine-dependent set of results); processing a row at a time (a loop
//! per row over p values, with every accumulator in memory).

use super::{Data, Real};

/// Columns per SIMD-friendly group; rows of a block are padded to this.
pub(super) const LANES: usize = 8;
/// Height of a Hessian tile (its width is `LANES`).
const TILE: usize = 4;
/// Target size of one block buffer, in f64 values (32 KiB).
const BLOCK_VALUES: usize = 4096;

/// Round `p` up to a multiple of `LANES`.
pub(super) fn padded(p: usize) -> usize {
    p.div_ceil(LANES) * LANES
}

/// Spare blocks kept per thread (for fits of different widths at once).
const MAX_SPARES: usize = 4;

thread_local! {
    static SPARES: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Rows gathered from the data, converted to f64, padded to `stride`.
pub(super) struct Block {
    /// Columns of the data.
    p: usize,
    pub stride: usize,
    pub cap: usize,
    pub len: usize,
    pub x: Vec<f64>,
    pub w: Vec<f64>,
    pub y: Vec<f64>,
    /// Row index of each block row in the data.
    pub row: Vec<usize>,
    /// Work space: margins, then losses, residuals and Hessian weights.
    pub eta: Vec<f64>,
    pub loss: Vec<f64>,
    pub res: Vec<f64>,
    pub hw: Vec<f64>,
    /// Work space: rows scaled by their Hessian weight.
    pub xs: Vec<f64>,
    /// Work space: the lane sums of the margins.
    lanes: Vec<f64>,
}

impl Block {
    pub fn new(p: usize) -> Self {
        let stride = padded(p);
        let cap = (BLOCK_VALUES / stride).clamp(16, 256);
        Self {
            p,
            stride,
            cap,
            len: 0,
            x: vec![0.0; cap * stride],
            w: vec![0.0; cap],
            y: vec![0.0; cap],
            row: vec![0; cap],
            eta: vec![0.0; cap],
            loss: vec![0.0; cap],
            res: vec![0.0; cap],
            hw: vec![0.0; cap],
            xs: Vec::new(),
            lanes: Vec::new(),
        }
    }

    /// A block for `p` columns from this thread's spares, or a new one:
    /// zeroing a fresh block for every leaf cost as much as a third of a
    /// pass at p = 8. A spare's contents beyond `len` rows are never read,
    /// and its padding columns are never written, so they stay zero.
    pub fn take(p: usize) -> Self {
        let spare = SPARES.with(|s| {
            let mut s = s.borrow_mut();
            let at = s.iter().position(|b| b.p == p)?;
            Some(s.swap_remove(at))
        });
        spare.unwrap_or_else(|| Self::new(p))
    }

    /// Keep the block for the next leaf run by this thread.
    pub fn give_back(self) {
        SPARES.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < MAX_SPARES {
                s.push(self);
            }
        });
    }

    /// Row `r` of the block, padded.
    pub fn xr(&self, r: usize) -> &[f64] {
        &self.x[r * self.stride..(r + 1) * self.stride]
    }

    /// eta_r = x_r . beta for every row (`beta` padded to the stride), the
    /// same sums as [`dot_lanes`]. The eight lane sums of each row are
    /// stored before they are combined: accumulators that end in a store
    /// are kept in full-width vector registers, ones that end in a
    /// horizontal sum were split into 128-bit halves.
    #[inline(always)]
    pub fn margins(&mut self, beta: &[f64]) {
        let (n, s) = (self.len, self.stride);
        self.lanes.resize(self.cap * LANES, 0.0);
        for (t, xr) in self
            .lanes
            .chunks_exact_mut(LANES)
            .zip(self.x.chunks_exact(s))
            .take(n)
        {
            let mut acc = [0.0; LANES];
            for (u, v) in xr.chunks_exact(LANES).zip(beta.chunks_exact(LANES)) {
                for l in 0..LANES {
                    acc[l] += u[l] * v[l];
                }
            }
            t.copy_from_slice(&acc);
        }
        for (e, t) in self.eta[..n].iter_mut().zip(self.lanes.chunks_exact(LANES)) {
            let h = [t[0] + t[4], t[1] + t[5], t[2] + t[6], t[3] + t[7]];
            *e = (h[0] + h[2]) + (h[1] + h[3]);
        }
    }
}

impl<T: Real> Data<'_, T> {
    /// Visit the rows with positive weight among positions `a..b` in blocks.
    /// Without weights every row is visited, `cap` rows at a time, and
    /// contiguous rows whose length needs no padding are copied in one piece
    /// (a call per row costs more than the copy); with weights, row by row.
    pub(super) fn blocks(
        &self,
        a: usize,
        b: usize,
        blk: &mut Block,
        mut f: impl FnMut(&mut Block),
    ) {
        if self.w.is_some() {
            return self.weighted_blocks(a, b, blk, f);
        }
        let (p, s) = (self.p, blk.stride);
        let mut k = a;
        while k < b {
            let n = (b - k).min(blk.cap);
            match self.rows {
                None if s == p => T::widen(&self.x[k * p..(k + n) * p], &mut blk.x[..n * p]),
                None => {
                    let src = self.x[k * p..(k + n) * p].chunks_exact(p);
                    for (dst, row) in blk.x.chunks_exact_mut(s).zip(src) {
                        T::widen(row, &mut dst[..p]);
                    }
                }
                Some(rows) => {
                    for (dst, &i) in blk.x.chunks_exact_mut(s).zip(&rows[k..k + n]) {
                        T::widen(&self.x[i * p..(i + 1) * p], &mut dst[..p]);
                    }
                }
            }
            blk.w[..n].fill(1.0);
            match self.rows {
                None => {
                    blk.y[..n].copy_from_slice(&self.y[k..k + n]);
                    blk.row[..n].iter_mut().zip(k..).for_each(|(r, i)| *r = i);
                }
                Some(rows) => {
                    let idx = &rows[k..k + n];
                    blk.y[..n]
                        .iter_mut()
                        .zip(idx)
                        .for_each(|(y, &i)| *y = self.y[i]);
                    blk.row[..n].copy_from_slice(idx);
                }
            }
            blk.len = n;
            f(blk);
            k += n;
        }
        blk.len = 0;
    }

    fn weighted_blocks(&self, a: usize, b: usize, blk: &mut Block, mut f: impl FnMut(&mut Block)) {
        let (p, s) = (self.p, blk.stride);
        blk.len = 0;
        for k in a..b {
            let i = self.row(k);
            let w = self.weight(i);
            if w > 0.0 {
                let r = blk.len;
                let src = &self.x[i * p..(i + 1) * p];
                T::widen(src, &mut blk.x[r * s..r * s + p]);
                (blk.w[r], blk.y[r], blk.row[r]) = (w, self.y[i], i);
                blk.len += 1;
                if blk.len == blk.cap {
                    f(blk);
                    blk.len = 0;
                }
            }
        }
        if blk.len > 0 {
            f(blk);
        }
        blk.len = 0;
    }
}

/// Dot product of two slices whose length is a multiple of `LANES`, with
/// `LANES` accumulators (written as two halves, which the compiler keeps in
/// vector registers without shuffles) combined pairwise.
#[inline(always)]
pub(super) fn dot_lanes(a: &[f64], b: &[f64]) -> f64 {
    let (mut lo, mut hi) = ([0.0; 4], [0.0; 4]);
    for (u, v) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..4 {
            lo[l] += u[l] * v[l];
        }
        for l in 0..4 {
            hi[l] += u[l + 4] * v[l + 4];
        }
    }
    let h = [lo[0] + hi[0], lo[1] + hi[1], lo[2] + hi[2], lo[3] + hi[3]];
    (h[0] + h[2]) + (h[1] + h[3])
}

/// sum_j |a_j b_j| for slices as in [`dot_lanes`].
#[inline(always)]
pub(super) fn abs_dot_lanes(a: &[f64], b: &[f64]) -> f64 {
    let (mut lo, mut hi) = ([0.0; 4], [0.0; 4]);
    for (u, v) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..4 {
            lo[l] += (u[l] * v[l]).abs();
        }
        for l in 0..4 {
            hi[l] += (u[l + 4] * v[l + 4]).abs();
        }
    }
    let h = [lo[0] + hi[0], lo[1] + hi[1], lo[2] + hi[2], lo[3] + hi[3]];
    (h[0] + h[2]) + (h[1] + h[3])
}

/// What a pass computes besides the loss.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Want {
    Loss,
    Grad,
    /// The gradient and the Hessian's diagonal (L-BFGS's first scaling).
    GradDiag,
    Hess,
}

/// Loss, gradient and Hessian sums of one leaf, in padded coordinates.
pub(super) struct Sums {
    pub nll: f64,
    /// Length `stride` (empty for `Want::Loss`).
    pub grad: Vec<f64>,
    /// `stride x stride` row-major; only the upper triangle is meaningful
    /// (empty unless `Want::Hess`).
    pub hess: Vec<f64>,
    /// Length `stride` (empty unless `Want::GradDiag`).
    pub diag: Vec<f64>,
}

impl Sums {
    pub fn new(stride: usize, want: Want) -> Self {
        Self {
            nll: 0.0,
            grad: if want >= Want::Grad {
                vec![0.0; stride]
            } else {
                Vec::new()
            },
            hess: if want == Want::Hess {
                vec![0.0; stride * stride]
            } else {
                Vec::new()
            },
            diag: if want == Want::GradDiag {
                vec![0.0; stride]
            } else {
                Vec::new()
            },
        }
    }

    pub fn merge(mut self, other: Self) -> Self {
        self.nll += other.nll;
        add_into(&mut self.grad, &other.grad);
        add_into(&mut self.hess, &other.hess);
        add_into(&mut self.diag, &other.diag);
        self
    }
}

fn add_into(acc: &mut [f64], other: &[f64]) {
    for (a, b) in acc.iter_mut().zip(other) {
        *a += b;
    }
}

/// ln 2 split so that k * LN2_HI is exact for |k| < 2^32 (its low 32 bits
/// are zero) and LN2_HI + LN2_LO = ln 2 to about 2^-80.
const LN2_HI: f64 = 0.693_146_705_627_441_4;
const LN2_LO: f64 = 4.749_325_039_031_672_6e-7;
/// 1.5 * 2^52: adding it rounds a double below 2^51 in magnitude to an
/// integer, which then sits in the low bits of the sum.
const ROUNDER: f64 = 6_755_399_441_055_744.0;

/// e^-a for a >= 0 (NaN stays NaN), branch-free so that a loop of it
/// vectorises. Cody & Waite's reduction -a = k ln 2 + r with k an integer
/// and |r| <= ln(2)/2 (ln 2 in two parts, so k ln 2 is exact), then e^r by
/// its Taylor polynomial to degree 13 (remainder below 5e-18), and 2^k
/// applied as two exact powers of two, so that results down to the smallest
/// subnormal are rounded once. Within 2 ulp of the C library's `exp`.
#[inline(always)]
pub(super) fn exp_neg(a: f64) -> f64 {
    let t = -a;
    // e^-746 rounds to 0; the test keeps NaN (a NaN comparison is false).
    let t = if t < -746.0 { -746.0 } else { t };
    let shifted = t * std::f64::consts::LOG2_E + ROUNDER;
    let kf = shifted - ROUNDER;
    let r = (t - kf * LN2_HI) - kf * LN2_LO;
    let mut poly = 1.0 / 6_227_020_800.0;
    for d in [
        479_001_600.0,
        39_916_800.0,
        3_628_800.0,
        362_880.0,
        40_320.0,
        5_040.0,
        720.0,
        120.0,
        24.0,
        6.0,
        2.0,
        1.0,
        1.0,
    ] {
        poly = poly * r + 1.0 / d;
    }
    // k in [-1076, 0] from the low bits; 2^k = 2^(k1 - 1023) 2^(k2 - 1023)
    // with both factors normal.
    let k = shifted.to_bits().wrapping_sub(ROUNDER.to_bits());
    let kk = k.wrapping_add(2046);
    let k1 = kk >> 1;
    let k2 = kk - k1;
    poly * f64::from_bits(k1 << 52) * f64::from_bits(k2 << 52)
}

/// ln(1 + e) for e in [0, 1] (NaN stays NaN), given q = 1 / (1 + e);
/// branch-free. With u = 1 + e rounded, u = 2^j m, m in (sqrt(1/2),
/// sqrt(2)], ln m = 2 atanh(s) with s = (m - 1) / (m + 1), |s| < 0.172, by
/// its series to s^21 (relative remainder below 1e-18); the rounding of u
/// is undone by the first-order term (e - (u - 1)) / u. Within 2 ulp of the
/// C library's `log1p`.
#[inline(always)]
pub(super) fn ln_1p_unit(e: f64, q: f64) -> f64 {
    let u = 1.0 + e;
    let big = u > std::f64::consts::SQRT_2;
    let m = if big { 0.5 * u } else { u };
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let mut poly = 1.0 / 21.0;
    for d in [19.0, 17.0, 15.0, 13.0, 11.0, 9.0, 7.0, 5.0] {
        poly = poly * z + 1.0 / d;
    }
    poly = poly * z + 1.0 / 3.0;
    // The leading terms are added last, so the small ones round little.
    let (s2, j) = (s + s, if big { 1.0 } else { 0.0 });
    let small = s2 * (z * poly) + (j * LN2_LO + (e - (u - 1.0)) * q);
    (j * LN2_HI + s2) + small
}

/// Per row of the block: loss, residual w (p - y) and Hessian weight
/// w p (1 - p) at the margins in `blk.eta`; returns the weighted loss sum.
/// From e = exp(-|eta|): softplus(+-eta) = max(+-eta, 0) + ln(1 + e), and
/// the loss (1 - y) softplus(eta) + y softplus(-eta) drops a term whose
/// weight is zero, so an infinite margin gives +inf, never NaN. An indexed
/// loop with selects, not branches, and no reduction: it vectorises.
#[inline(always)]
fn row_terms(blk: &mut Block) -> f64 {
    let n = blk.len;
    let (eta, y, w) = (&blk.eta[..n], &blk.y[..n], &blk.w[..n]);
    let (loss, res, hw) = (&mut blk.loss[..n], &mut blk.res[..n], &mut blk.hw[..n]);
    for r in 0..n {
        let (eta, y, w) = (eta[r], y[r], w[r]);
        let e = exp_neg(eta.abs());
        let q = 1.0 / (1.0 + e);
        let l = ln_1p_unit(e, q);
        let prob = if eta >= 0.0 { q } else { e * q };
        let a = if y < 1.0 {
            (1.0 - y) * (eta.max(0.0) + l)
        } else {
            0.0
        };
        let b = if y > 0.0 {
            y * ((-eta).max(0.0) + l)
        } else {
            0.0
        };
        loss[r] = w * (a + b);
        res[r] = w * (prob - y);
        hw[r] = w * (e * q * q);
    }
    let mut sum = [0.0; 4];
    let chunks = loss.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..4 {
            sum[l] += c[l];
        }
    }
    ((sum[0] + sum[1]) + (sum[2] + sum[3])) + tail
}

/// Add one block's contribution to `acc` (margins already in `blk.eta`).
#[inline(always)]
fn accumulate_body(blk: &mut Block, want: Want, acc: &mut Sums) {
    let (n, s) = (blk.len, blk.stride);
    acc.nll += row_terms(blk);
    if want == Want::Loss {
        return;
    }
    gradient_update(&mut acc.grad, s, &blk.x[..n * s], &blk.res[..n]);
    if want == Want::GradDiag {
        diagonal_update(&mut acc.diag, s, &blk.x[..n * s], &blk.hw[..n]);
    }
    if want == Want::Hess {
        blk.xs.resize(blk.cap * s, 0.0);
        for ((d, xr), &h) in blk
            .xs
            .chunks_exact_mut(s)
            .zip(blk.x.chunks_exact(s))
            .zip(&blk.hw[..n])
        {
            for (u, v) in d.iter_mut().zip(xr) {
                *u = h * v;
            }
        }
        upper_rank_update(&mut acc.hess, s, &blk.xs[..n * s], &blk.x[..n * s]);
    }
}

/// g += x^T c, eight columns at a time with the sums over the block's rows
/// held in registers (a row at a time would load and store all of g).
#[inline(always)]
fn gradient_update(g: &mut [f64], s: usize, x: &[f64], c: &[f64]) {
    for k0 in (0..s).step_by(LANES) {
        let mut t = [0.0; LANES];
        for (xr, &cr) in x.chunks_exact(s).zip(c) {
            let xr = &xr[k0..k0 + LANES];
            for l in 0..LANES {
                t[l] += cr * xr[l];
            }
        }
        add_into(&mut g[k0..k0 + LANES], &t);
    }
}

/// d_k += sum_r c_r x_rk^2, as [`gradient_update`].
#[inline(always)]
fn diagonal_update(d: &mut [f64], s: usize, x: &[f64], c: &[f64]) {
    for k0 in (0..s).step_by(LANES) {
        let mut t = [0.0; LANES];
        for (xr, &cr) in x.chunks_exact(s).zip(c) {
            let xr = &xr[k0..k0 + LANES];
            for l in 0..LANES {
                t[l] += cr * xr[l] * xr[l];
            }
        }
        add_into(&mut d[k0..k0 + LANES], &t);
    }
}

/// h += xs^T x on the tiles covering the upper triangle of the
/// `s x s` matrix h (both operands `rows x s`, row-major): rows j0..j0+4
/// against columns from j0 on, in tiles eight wide after a four-wide one
/// where j0 is not a multiple of eight.
#[inline(always)]
fn upper_rank_update(h: &mut [f64], s: usize, xs: &[f64], x: &[f64]) {
    for j0 in (0..s).step_by(TILE) {
        let mut k0 = j0;
        if j0 % LANES != 0 {
            tile::<TILE>(h, s, xs, x, j0, k0);
            k0 += TILE;
        }
        for k0 in (k0..s).step_by(LANES) {
            tile::<LANES>(h, s, xs, x, j0, k0);
        }
    }
}

/// h[j0..j0+4, k0..k0+W] += xs[:, j0..j0+4]^T x[:, k0..k0+W], the sums
/// over the rows held in registers.
#[inline(always)]
fn tile<const W: usize>(h: &mut [f64], s: usize, xs: &[f64], x: &[f64], j0: usize, k0: usize) {
    let mut t = [[0.0; W]; TILE];
    for (a, b) in xs.chunks_exact(s).zip(x.chunks_exact(s)) {
        let a = &a[j0..j0 + TILE];
        let b = &b[k0..k0 + W];
        for (tj, &aj) in t.iter_mut().zip(a) {
            for (v, &bk) in tj.iter_mut().zip(b) {
                *v += aj * bk;
            }
        }
    }
    for (jj, tj) in t.iter().enumerate() {
        add_into(&mut h[(j0 + jj) * s + k0..(j0 + jj) * s + k0 + W], tj);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn accumulate_avx2(blk: &mut Block, beta: &[f64], want: Want, acc: &mut Sums) {
    blk.margins(beta);
    accumulate_body(blk, want, acc);
}

/// Margins of the block at `beta` (padded), then its loss, gradient and
/// Hessian sums added to `acc` as `want` asks.
pub(super) fn accumulate(blk: &mut Block, beta: &[f64], want: Want, acc: &mut Sums) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the running CPU supports AVX2, checked just above.
        return unsafe { accumulate_avx2(blk, beta, want, acc) };
    }
    blk.margins(beta);
    accumulate_body(blk, want, acc);
}

/// f64 copies of f32 values, with 256-bit conversions where the CPU has
/// them (exact either way).
pub(super) fn widen_f32(src: &[f32], dst: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if src.len() >= 16 && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the running CPU supports AVX2, checked just above.
        return unsafe { widen_f32_avx2(src, dst) };
    }
    widen_f32_body(src, dst);
}

#[inline(always)]
fn widen_f32_body(src: &[f32], dst: &mut [f64]) {
    for (d, v) in dst.iter_mut().zip(src) {
        *d = f64::from(*v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn widen_f32_avx2(src: &[f32], dst: &mut [f64]) {
    widen_f32_body(src, dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place (both finite and of one sign).
    fn ulps(a: f64, b: f64) -> u64 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn exp_neg_within_two_ulp_down_to_subnormals() {
        let mut worst = 0;
        for i in 0..200_000 {
            // Dense near 0, then out to the underflow threshold.
            let a = if i < 100_000 {
                f64::from(i) * 1e-5
            } else {
                f64::from(i - 100_000) * 0.007_46
            };
            let (got, want) = (exp_neg(a), (-a).exp());
            if want >= f64::MIN_POSITIVE {
                worst = worst.max(ulps(got, want));
            } else {
                assert!((got - want).abs() <= 2.0 * 5e-324, "{a}: {got} vs {want}");
            }
        }
        assert!(worst <= 2, "worst {worst} ulp");
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(746.0), 0.0);
        assert_eq!(exp_neg(f64::INFINITY), 0.0);
        assert!(exp_neg(f64::NAN).is_nan());
    }

    #[test]
    fn ln_1p_unit_within_two_ulp() {
        let mut worst = 0;
        for i in 0..=200_000 {
            // e from 1 down to 1e-300, log-spaced, plus a linear sweep.
            let e = if i <= 100_000 {
                10f64.powf(-3.0 * f64::from(i) / 1000.0)
            } else {
                f64::from(i - 100_000) / 100_000.0
            };
            let got = ln_1p_unit(e, 1.0 / (1.0 + e));
            worst = worst.max(ulps(got, e.ln_1p()));
        }
        assert!(worst <= 2, "worst {worst} ulp");
        assert_eq!(ln_1p_unit(0.0, 1.0), 0.0);
        assert_eq!(ln_1p_unit(1.0, 0.5), std::f64::consts::LN_2);
        assert!(ln_1p_unit(f64::NAN, f64::NAN).is_nan());
    }

    /// The block kernels against a row-by-row evaluation with the standard
    /// library's exp and ln_1p and a plain triple loop for the Hessian.
    #[test]
    fn block_sums_match_plain_loops() {
        let p = 11;
        let mut blk = Block::new(p);
        let n = blk.cap - 3;
        let mut seed = 7_u64;
        let mut unit = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let beta: Vec<f64> = (0..blk.stride)
            .map(|j| if j < p { 3.0 * unit() } else { 0.0 })
            .collect();
        for r in 0..n {
            for j in 0..p {
                blk.x[r * blk.stride + j] = 4.0 * unit();
            }
            blk.y[r] = [0.0, 1.0, 0.25][r % 3];
            blk.w[r] = 1.0 + unit();
        }
        blk.len = n;
        let mut acc = Sums::new(blk.stride, Want::Hess);
        accumulate(&mut blk, &beta, Want::Hess, &mut acc);
        let (mut nll, mut g, mut h) = (0.0, vec![0.0; p], vec![0.0; p * p]);
        for r in 0..n {
            let x = &blk.x[r * blk.stride..r * blk.stride + p];
            let eta: f64 = x.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let (y, w) = (blk.y[r], blk.w[r]);
            let prob = 1.0 / (1.0 + (-eta).exp());
            nll += w * ((1.0 + eta.exp()).ln() - y * eta);
            for j in 0..p {
                g[j] += w * (prob - y) * x[j];
                for k in 0..p {
                    h[j * p + k] += w * prob * (1.0 - prob) * x[j] * x[k];
                }
            }
        }
        assert!((acc.nll - nll).abs() < 1e-12 * nll, "{} vs {nll}", acc.nll);
        for j in 0..p {
            assert!((acc.grad[j] - g[j]).abs() < 1e-11, "grad {j}");
            for k in j..p {
                let got = acc.hess[j * blk.stride + k];
                assert!((got - h[j * p + k]).abs() < 1e-11, "hess {j} {k}");
            }
        }
    }
}
