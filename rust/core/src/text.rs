//! Text features: twelve counts per response text, with no allocation per
//! text and no regular-expression engine.
//!
//! Method. One linear sweep per text, in blocks of 64 bytes. Each block
//! becomes bit masks (whitespace, alphanumeric, phrase first letter, `\n`,
//! the markers `*` `_` `[` `:`, non-ASCII) from 16-byte SIMD comparisons.
//! (1) Whole-text counts, code included: characters, words, emojis and the
//! apology / refusal phrases. An ASCII block's words and phrase candidates
//! are read off its masks; other bytes go through a 256-entry class table.
//! (2) Lines, taken at the `\n` bits as the sweep reaches them (one
//! trailing `\r` dropped): a state machine for fenced code blocks and,
//! outside code, the markdown rules. Those look at the line start (skipped
//! for a line opening with a letter), or search their markers with
//! `memchr` only in lines whose masks hold them (`**`, `__`, `[`, `:`).
//!
//! Every rule reproduces the leftmost, non-overlapping semantics of the
//! regular expressions in `docs/features.md`; `rlhf_diag._reference` states
//! the same rules with Python's `re`, and is the oracle of the tests.
//! Shared definitions: whitespace is Unicode `White_Space`
//! (`char::is_whitespace`; U+001C..U+001F are *not* whitespace, unlike
//! Python's `str.split`), digits are ASCII, phrase matching folds ASCII case
//! only and reads U+2019 as an apostrophe, and a phrase boundary is any
//! character that is not an ASCII letter or digit.
//!
//! Cost. Each scanner moves forward only: a bold opener with no closer ends
//! that line's search (the closing test does not depend on the opener, so no
//! later opener can find one either), and a failed link start resumes at the
//! next `[`. Rows run in parallel, `ROWS_PER_TASK` to a rayon task.
//!
//! Rejected alternatives, measured on 11 MB of `alpaca_eval` outputs on one
//! thread. A second sweep over the lines with `memchr`, and per-text
//! searches for the markers (the previous design): about 1.3 times slower
//! on the benchmark texts. A per-character loop for everything with
//! per-line phrase attempts: a tenth of the present speed. `aho-corasick` for the phrases
//! (leftmost-first, ASCII case-insensitive, U+2019 variants spelled out):
//! a quarter of the run time, because phrases open with letters too common
//! for its prefilter to skip; the mask candidates plus a two-byte check are
//! cheaper. A class-table loop over every byte, without the ASCII blocks:
//! about 1.7 times slower. The `regex` crate: no look-around (bold needs
//! it), and one pass per feature.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use memchr::{memchr, memchr2};
use rayon::prelude::*;

use crate::{invalid, Result};

/// Number of features per text.
pub const N_FEATURES: usize = 12;

/// Public column names, in output order.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "chars",
    "words",
    "headers",
    "ordered_items",
    "unordered_items",
    "bold",
    "code_blocks",
    "table_rows",
    "links",
    "emojis",
    "apologies",
    "refusals",
];

/// Apology phrases (lower case; matched with ASCII case folding).
pub const APOLOGY_PHRASES: [&str; 6] = [
    "sorry",
    "apologize",
    "apologise",
    "apologies",
    "apologizing",
    "apologising",
];

/// Refusal phrases (lower case; `'` also matches U+2019).
pub const REFUSAL_PHRASES: [&str; 14] = [
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i will not",
    "i'm not able to",
    "i am not able to",
    "i'm unable to",
    "i am unable to",
    "i'm not comfortable",
    "i am not comfortable",
    "i don't feel comfortable",
    "as an ai",
    "i must decline",
];

const CHARS: usize = 0;
const WORDS: usize = 1;
const HEADERS: usize = 2;
const ORDERED: usize = 3;
const UNORDERED: usize = 4;
const BOLD: usize = 5;
const CODE_BLOCKS: usize = 6;
const TABLE_ROWS: usize = 7;
const LINKS: usize = 8;
const EMOJIS: usize = 9;
const APOLOGIES: usize = 10;
const REFUSALS: usize = 11;

/// Rows handled by one rayon task.
const ROWS_PER_TASK: usize = 64;

/// Features of many texts stored as Arrow large-string buffers.
///
/// `offsets` has `n + 1` entries (row `i` is `data[offsets[i]..offsets[i+1]]`;
/// an empty slice means zero rows); the result is row-major `n x 12`, columns
/// in [`FEATURE_NAMES`] order. Rows run in parallel on the current rayon pool.
///
/// # Errors
/// `InvalidInput` naming the row for offsets that are negative, decreasing or
/// past the end of `data`, for a row longer than `u32::MAX` bytes, and for a
/// row that is not valid UTF-8 (the lowest such row is reported).
pub fn text_features(offsets: &[i64], data: &[u8]) -> Result<Vec<u32>> {
    let n = validate_offsets("texts", offsets, data.len())?;
    let mut out = vec![0u32; n * N_FEATURES];
    let first_error = out
        .par_chunks_mut(ROWS_PER_TASK * N_FEATURES)
        .enumerate()
        .filter_map(|(task, chunk)| fill_rows(task * ROWS_PER_TASK, chunk, offsets, data).err())
        .min_by_key(|(row, _)| *row);
    match first_error {
        Some((_, message)) => Err(invalid!("{message}")),
        None => Ok(out),
    }
}

/// [`text_features`] on a dedicated pool of `n_threads` threads, or on the
/// current rayon pool when `None`.
///
/// # Errors
/// As [`text_features`]; also `InvalidInput` for `Some(0)` or a pool that
/// cannot be started.
pub fn text_features_with_threads(
    offsets: &[i64],
    data: &[u8],
    n_threads: Option<usize>,
) -> Result<Vec<u32>> {
    let Some(k) = n_threads else {
        return text_features(offsets, data);
    };
    if k == 0 {
        return Err(invalid!("n_threads must be at least 1, got 0"));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(k)
        .build()
        .map_err(|e| invalid!("cannot start a pool of {k} threads: {e}"))?;
    pool.install(|| text_features(offsets, data))
}

/// Features of one text, in [`FEATURE_NAMES`] order (texts of at most
/// `u32::MAX` bytes, as [`text_features`] checks).
///
/// One pass over the bytes in blocks of 64: each block's bit masks feed the
/// whole-text counters and give the line ends (and which lines hold a
/// marker byte), and each line is handled as its end is reached.
#[must_use]
pub fn features_of(text: &str) -> [u32; N_FEATURES] {
    sweep::<false>(text)
}

/// [`features_of`], with the block masks from 32-byte AVX2 comparisons
/// when `WIDE` (only instantiated by [`fill_rows_avx2`], after the CPU
/// check); the masks, and so the counts, are the same either way.
#[inline(always)]
fn sweep<const WIDE: bool>(text: &str) -> [u32; N_FEATURES] {
    let b = text.as_bytes();
    let mut counts = [0u32; N_FEATURES];
    let mut whole = WholeText {
        prev: WS, // the text start acts as whitespace, not alphanumeric
        ..WholeText::default()
    };
    let mut lines = Lines::default();
    let mut i = 0;
    while let Some(block) = b.get(i..i + BLOCK) {
        let m = Masks::choose::<WIDE>(block.try_into().unwrap_or(&[0; BLOCK]));
        let next = if m.non_ascii == 0 {
            whole.ascii_block(b, i, &m);
            i + BLOCK
        } else {
            // May stop up to 3 bytes past the block, inside a character:
            // those continuation bytes are neither `\n` nor markers.
            whole.bytes(text, i, i + BLOCK)
        };
        lines.block(text, i, &m, &mut counts);
        i = next;
    }
    let rest = b.get(i..).unwrap_or_default();
    let mut tail = [0u8; BLOCK]; // NUL padding: in no mask
    tail[..rest.len()].copy_from_slice(rest);
    whole.bytes(text, i, b.len());
    lines.block(text, i, &Masks::choose::<WIDE>(&tail), &mut counts);
    lines.line(text, b.len(), &mut counts);
    whole.store(&mut counts);
    counts
}

/// Checks that `offsets` are valid Arrow large-string offsets into a buffer
/// of `data_len` bytes and returns the number of rows; errors name the
/// column (`name`) and the first bad row. Shared by every string-taking
/// engine.
pub fn validate_offsets(name: &str, offsets: &[i64], data_len: usize) -> Result<usize> {
    let Some(&first) = offsets.first() else {
        return Ok(0);
    };
    if first < 0 {
        return Err(invalid!("{name} offsets: row 0 starts at {first}, below 0"));
    }
    for (row, pair) in offsets.windows(2).enumerate() {
        let (start, end) = (pair[0], pair[1]);
        if end < start {
            return Err(invalid!(
                "{name} offsets: row {row} ends at {end}, before its start {start} (offsets must not decrease)"
            ));
        }
        if usize::try_from(end).map_or(true, |e| e > data_len) {
            return Err(invalid!(
                "{name} offsets: row {row} ends at {end}, past the end of data ({data_len} bytes)"
            ));
        }
        if end - start > i64::from(u32::MAX) {
            return Err(invalid!(
                "{name}: row {row} holds {} bytes, more than the {} a row may hold",
                end - start,
                u32::MAX
            ));
        }
    }
    Ok(offsets.len() - 1)
}

/// Fills `chunk` with the features of rows `first..first + chunk.len() / 12`,
/// compiled for AVX2 and POPCNT where the CPU has them (the word count is
/// a popcount per block; integer work only, so the results are the same).
fn fill_rows(
    first: usize,
    chunk: &mut [u32],
    offsets: &[i64],
    data: &[u8],
) -> std::result::Result<(), (usize, String)> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("popcnt")
    {
        // SAFETY: the running CPU has both features, checked just above.
        return unsafe { fill_rows_avx2(first, chunk, offsets, data) };
    }
    fill_rows_body::<false>(first, chunk, offsets, data)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn fill_rows_avx2(
    first: usize,
    chunk: &mut [u32],
    offsets: &[i64],
    data: &[u8],
) -> std::result::Result<(), (usize, String)> {
    fill_rows_body::<true>(first, chunk, offsets, data)
}

/// Offsets were validated, so the casts and slices cannot fail.
#[inline(always)]
fn fill_rows_body<const WIDE: bool>(
    first: usize,
    chunk: &mut [u32],
    offsets: &[i64],
    data: &[u8],
) -> std::result::Result<(), (usize, String)> {
    for (k, out) in chunk.chunks_exact_mut(N_FEATURES).enumerate() {
        let row = first + k;
        let start = usize::try_from(offsets[row]).unwrap_or(0);
        let end = usize::try_from(offsets[row + 1]).unwrap_or(0);
        let bytes = data.get(start..end).unwrap_or_default();
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let at = e.valid_up_to();
            (
                row,
                format!("row {row}: invalid UTF-8 at byte {at} of the text"),
            )
        })?;
        out.copy_from_slice(&sweep::<WIDE>(text));
    }
    Ok(())
}

/// Open code fence: its character and length.
#[derive(Clone, Copy)]
struct Fence {
    ch: u8,
    len: usize,
}

/// Per-line flags: what the inline scanners need to find in the line.
const HAS_STARS: u8 = 1; // `**`
const HAS_UNDERSCORES: u8 = 2; // `__`
const HAS_BRACKET: u8 = 4; // `[`
const HAS_COLON: u8 = 8; // `:`

/// The line walk: where the current line starts, the flags of the line so
/// far, and the fence state.
#[derive(Default)]
struct Lines {
    start: usize,
    flags: u8,
    fence: Option<Fence>,
    /// End of the last block, and whether its last byte was `*` / `_`, so
    /// that a pair across two adjacent blocks is seen.
    block_end: usize,
    carry: [u64; 2],
}

impl Lines {
    /// The lines ending (at a `\n`) in the block at byte `base`.
    fn block(&mut self, text: &str, base: usize, m: &Masks, c: &mut [u32; N_FEATURES]) {
        if base != self.block_end {
            self.carry = [0; 2]; // bytes skipped inside a character: no pair
        }
        // Pairs marked at their second byte, which shares the first's line.
        let pairs = |x: u64, carry: u64| x & ((x << 1) | carry);
        let mut kinds = [
            pairs(m.star, self.carry[0]),
            pairs(m.underscore, self.carry[1]),
            m.bracket,
            m.colon,
        ];
        self.carry = [m.star >> 63, m.underscore >> 63];
        self.block_end = base + BLOCK;
        let mut nl = m.nl;
        while nl != 0 {
            let bit = nl.trailing_zeros();
            let upto = (1u64 << bit) - 1; // the bits before this `\n`
            for (k, x) in kinds.iter_mut().enumerate() {
                self.flags |= u8::from(*x & upto != 0) << k;
                *x &= !(upto | (1 << bit));
            }
            self.line(text, base + bit as usize, c);
            nl &= nl - 1;
        }
        for (k, x) in kinds.iter().enumerate() {
            self.flags |= u8::from(*x != 0) << k;
        }
    }

    /// The line from `self.start` to `end` (a `\n` or the text end).
    fn line(&mut self, text: &str, end: usize, c: &mut [u32; N_FEATURES]) {
        let raw = text.get(self.start..end).unwrap_or_default(); // `\n` is a boundary
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        line_counts(line, &mut self.fence, self.flags, c);
        self.start = end + 1;
        self.flags = 0;
    }
}

/// Byte classes of the whole-text scan.
const WS: u8 = 1;
const ALNUM: u8 = 2;
/// `a`, `i`, `s` in either case: the first letters of the phrases.
const FIRST: u8 = 4;
/// Lead byte of a multi-byte character: decoded on the slow path.
const MULTI: u8 = 8;

#[allow(clippy::cast_possible_truncation)] // x < 256
const fn byte_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        let b = x as u8;
        t[x] = if is_ascii_ws(b) {
            WS
        } else if b.is_ascii_alphanumeric() {
            ALNUM | if is_phrase_first(b) { FIRST } else { 0 }
        } else if b >= 0xC0 {
            MULTI
        } else {
            0
        };
        x += 1;
    }
    t
}

static CLASSES: [u8; 256] = byte_classes();

/// `char::is_whitespace` on ASCII: tab to carriage return, and space.
const fn is_ascii_ws(x: u8) -> bool {
    x == b' ' || (x >= b'\t' && x <= b'\r')
}

/// First letter of some phrase (`a`, `i`, `s`, either case).
const fn is_phrase_first(x: u8) -> bool {
    matches!(x | 0x20, b'a' | b'i' | b's')
}

/// Bytes per block of the whole-text scan: one bit each in a `u64`.
const BLOCK: usize = 64;
const BLOCK_U32: u32 = 64;

/// Characters, words, emojis and phrases: over the whole text, code
/// included. ASCII blocks of 64 bytes are read off their bit masks: words
/// are the non-whitespace bits after whitespace bits, phrase candidates the
/// first-letter bits after non-alphanumeric bits. Other bytes go one at a
/// time through a 256-entry class table, and a multi-byte character is
/// decoded for the whitespace and emoji tests.
#[derive(Default)]
struct WholeText {
    chars: u32,
    words: u32,
    emojis: u32,
    apologies: u32,
    refusals: u32,
    /// Class (`WS`, `ALNUM` or neither) of the last character seen.
    prev: u8,
    /// Each phrase list is scanned on its own: no match before these.
    resume_apology: usize,
    resume_refusal: usize,
}

impl WholeText {
    /// The 64 ASCII bytes at `i`, with their masks `m`.
    fn ascii_block(&mut self, b: &[u8], i: usize, m: &Masks) {
        let (ws, alnum) = (m.ws, m.alnum);
        let after_ws = (ws << 1) | u64::from(self.prev & WS != 0);
        self.words += (!ws & after_ws).count_ones();
        let after_alnum = (alnum << 1) | u64::from(self.prev & ALNUM != 0);
        let mut starts = m.opening & !after_alnum;
        while starts != 0 {
            self.phrases_at(b, i + starts.trailing_zeros() as usize);
            starts &= starts - 1;
        }
        self.chars += BLOCK_U32;
        self.prev = CLASSES[usize::from(b[i + BLOCK - 1])];
    }

    fn store(&self, c: &mut [u32; N_FEATURES]) {
        c[CHARS] = self.chars;
        c[WORDS] = self.words;
        c[EMOJIS] = self.emojis;
        c[APOLOGIES] = self.apologies;
        c[REFUSALS] = self.refusals;
    }

    /// Bytes `i..stop` one at a time (finishing the character that `stop`
    /// falls inside); returns where it stopped.
    fn bytes(&mut self, text: &str, mut i: usize, stop: usize) -> usize {
        let b = text.as_bytes();
        while i < stop {
            let class = CLASSES[usize::from(b[i])];
            if class & MULTI != 0 {
                let Some(ch) = char_at(text, i) else {
                    return b.len(); // unreachable: `i` is a char boundary
                };
                let ws = ch.is_whitespace();
                self.words += u32::from(!ws && self.prev & WS != 0);
                self.emojis += u32::from(is_emoji(ch));
                self.chars += 1;
                self.prev = if ws { WS } else { 0 };
                i += ch.len_utf8();
                continue;
            }
            if class & FIRST != 0 && self.prev & ALNUM == 0 {
                self.phrases_at(b, i);
            }
            self.words += u32::from(class & WS == 0 && self.prev & WS != 0);
            self.chars += 1;
            self.prev = class;
            i += 1;
        }
        i
    }

    /// Tries both phrase lists at byte `i`, a first letter after a boundary.
    /// Most candidates are common words ("a", "is", "so"): their first two
    /// bytes open no phrase, and one lookup rejects them.
    fn phrases_at(&mut self, b: &[u8], i: usize) {
        let key = u16::from(b[i].to_ascii_lowercase())
            | u16::from(b.get(i + 1).map_or(0, u8::to_ascii_lowercase)) << 8;
        if i >= self.resume_apology && APOLOGY_OPENINGS.contains(&key) {
            if let Some(end) = first_phrase_at(b, i, &APOLOGY_PHRASES) {
                self.apologies += 1;
                self.resume_apology = end;
            }
        }
        if i >= self.resume_refusal && REFUSAL_OPENINGS.contains(&key) {
            if let Some(end) = first_phrase_at(b, i, &REFUSAL_PHRASES) {
                self.refusals += 1;
                self.resume_refusal = end;
            }
        }
    }
}

/// [`Masks::opening`] from the masks of `a`, `i`, `s`, `o`, `p` (ASCII case
/// folded) and of space or `'`.
fn openings_mask([a, i, s, o, p, gap]: [u64; 6]) -> u64 {
    (s & (o >> 1)) | (a & ((p | s) >> 1)) | (i & (gap >> 1)) | ((a | i | s) & 1 << 63)
}

/// Bit masks of a 64-byte block, bit `j` for byte `j`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Masks {
    /// ASCII whitespace (`is_ascii_ws`).
    ws: u64,
    /// ASCII letters and digits.
    alnum: u64,
    /// Where a phrase may open: the first two bytes are `so`, `ap`, `as`,
    /// `i ` or `i'` (ASCII case folded; every phrase opens so, as a test
    /// checks); at bit 63, where the second byte lies in the next block,
    /// any first letter `a`, `i`, `s`.
    opening: u64,
    /// `\n`.
    nl: u64,
    /// Bytes the inline rules need: `*`, `_` (bold), `[` and `:` (links).
    star: u64,
    underscore: u64,
    bracket: u64,
    colon: u64,
    /// Bytes of 0x80 and above.
    non_ascii: u64,
}

/// Classify one vector `$v` of bytes (the `$k`-th of its block) into the
/// masks `$m` and the phrase-opening letter masks `$letters`: the body the
/// SSE2 and AVX2 builders share, given that width's byte-equality and
/// bitwise-or intrinsics and its `splat`, `within` and `bits` helpers.
#[cfg(target_arch = "x86_64")]
macro_rules! classify {
    ($m:ident, $letters:ident, $k:ident, $v:ident, $eq:ident, $or:ident,
     $splat:ident, $within:ident, $bits:ident) => {{
        let is = |x: u8| $eq($v, $splat(x));
        let lower = $or($v, $splat(0x20));
        let lower_is = |x: u8| $eq(lower, $splat(x));
        let ws = $or(is(b' '), $within($v, b'\t', b'\r'));
        let alnum = $or($within($v, b'0', b'9'), $within(lower, b'a', b'z'));
        $m.ws |= $bits(ws, $k);
        $m.alnum |= $bits(alnum, $k);
        for (acc, x) in $letters.iter_mut().zip([
            lower_is(b'a'),
            lower_is(b'i'),
            lower_is(b's'),
            lower_is(b'o'),
            lower_is(b'p'),
            $or(is(b' '), is(b'\'')),
        ]) {
            *acc |= $bits(x, $k);
        }
        $m.nl |= $bits(is(b'\n'), $k);
        $m.star |= $bits(is(b'*'), $k);
        $m.underscore |= $bits(is(b'_'), $k);
        $m.bracket |= $bits(is(b'['), $k);
        $m.colon |= $bits(is(b':'), $k);
        $m.non_ascii |= $bits($v, $k);
    }};
}

impl Masks {
    /// [`Masks::of_avx2`] when `WIDE`, else [`Masks::of`].
    #[inline(always)]
    fn choose<const WIDE: bool>(block: &[u8; BLOCK]) -> Self {
        #[cfg(target_arch = "x86_64")]
        if WIDE {
            // SAFETY: `WIDE` is only set by `fill_rows_avx2`, which runs
            // after the check that the CPU has AVX2.
            return unsafe { Self::of_avx2(block) };
        }
        Self::of(block)
    }

    /// As [`Masks::of`], 32 bytes per comparison.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
    fn of_avx2(block: &[u8; BLOCK]) -> Self {
        use std::arch::x86_64::{
            __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
            _mm256_set1_epi8, _mm256_setzero_si256, _mm256_sub_epi8, _mm256_subs_epu8,
        };
        let splat = |x: u8| _mm256_set1_epi8(x as i8);
        let bits = |v: __m256i, k: usize| u64::from(_mm256_movemask_epi8(v) as u32) << (32 * k);
        let within = |x: __m256i, lo: u8, hi: u8| {
            let t = _mm256_subs_epu8(_mm256_sub_epi8(x, splat(lo)), splat(hi - lo));
            _mm256_cmpeq_epi8(t, _mm256_setzero_si256())
        };
        let mut m = Masks::default();
        let mut letters = [0u64; 6];
        for k in 0..BLOCK / 32 {
            // SAFETY: 32 bytes inside the 64-byte array; unaligned allowed.
            let v = unsafe { _mm256_loadu_si256(block.as_ptr().add(32 * k).cast()) };
            classify!(
                m,
                letters,
                k,
                v,
                _mm256_cmpeq_epi8,
                _mm256_or_si256,
                splat,
                within,
                bits
            );
        }
        m.opening = openings_mask(letters);
        m
    }

    /// With SSE2 (part of every x86-64 CPU): 16 bytes per comparison,
    /// one `movemask` per 16 bits.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
    fn of(block: &[u8; BLOCK]) -> Self {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8, _mm_setzero_si128, _mm_sub_epi8, _mm_subs_epu8,
        };
        // SAFETY: SSE2 is in the x86-64 baseline; each load reads 16 bytes
        // inside the 64-byte array, unaligned loads allowed.
        unsafe {
            let splat = |x: u8| _mm_set1_epi8(x as i8);
            let bits = |v: __m128i, k: usize| u64::from(_mm_movemask_epi8(v) as u16) << (16 * k);
            // lo <= x <= hi, unsigned: (x - lo) saturating-minus (hi - lo) is 0.
            let within = |x: __m128i, lo: u8, hi: u8| {
                let t = _mm_subs_epu8(_mm_sub_epi8(x, splat(lo)), splat(hi - lo));
                _mm_cmpeq_epi8(t, _mm_setzero_si128())
            };
            let mut m = Masks::default();
            let mut letters = [0u64; 6];
            for k in 0..BLOCK / 16 {
                let v = _mm_loadu_si128(block.as_ptr().add(16 * k).cast());
                classify!(
                    m,
                    letters,
                    k,
                    v,
                    _mm_cmpeq_epi8,
                    _mm_or_si128,
                    splat,
                    within,
                    bits
                );
            }
            m.opening = openings_mask(letters);
            m
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn of(block: &[u8; BLOCK]) -> Self {
        Self::portable(block)
    }

    /// Byte flags from loops the compiler vectorises, then eight at a time
    /// packed into bits by one multiplication.
    #[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
    fn portable(block: &[u8; BLOCK]) -> Self {
        fn mask(block: &[u8; BLOCK], pred: impl Fn(u8) -> bool) -> u64 {
            const PACK: u64 = 0x0102_0408_1020_4080;
            let mut flags = [0u8; BLOCK];
            for (f, &x) in flags.iter_mut().zip(block) {
                *f = u8::from(pred(x));
            }
            let mut m = 0;
            for (k, eight) in flags.chunks_exact(8).enumerate() {
                let x = u64::from_le_bytes(eight.try_into().unwrap_or_default());
                m |= (x.wrapping_mul(PACK) >> 56) << (8 * k);
            }
            m
        }
        Masks {
            ws: mask(block, is_ascii_ws),
            alnum: mask(block, |x| x.is_ascii_alphanumeric()),
            opening: openings_mask([
                mask(block, |x| x | 0x20 == b'a'),
                mask(block, |x| x | 0x20 == b'i'),
                mask(block, |x| x | 0x20 == b's'),
                mask(block, |x| x | 0x20 == b'o'),
                mask(block, |x| x | 0x20 == b'p'),
                mask(block, |x| x == b' ' || x == b'\''),
            ]),
            nl: mask(block, |x| x == b'\n'),
            star: mask(block, |x| x == b'*'),
            underscore: mask(block, |x| x == b'_'),
            bracket: mask(block, |x| x == b'['),
            colon: mask(block, |x| x == b':'),
            non_ascii: mask(block, |x| x >= 0x80),
        }
    }
}

/// The fence state machine, then the markdown rules outside code.
/// `flags` (`HAS_*`) say which inline scanners can find anything: bold
/// needs its `**` or `__`, a link its `[`, a bare URL its `://`.
fn line_counts(line: &str, fence: &mut Option<Fence>, flags: u8, c: &mut [u32; N_FEATURES]) {
    let b = line.as_bytes();
    if b.is_empty() {
        return; // no rule matches an empty line, nor does it close a fence
    }
    if let Some(f) = *fence {
        if closes_fence(b, f) {
            *fence = None;
        }
        return;
    }
    // A line opening with an ASCII letter is no fence, header, list item
    // or table row (each starts with blanks, `#`, a digit, a marker or `|`).
    if !b.first().is_some_and(u8::is_ascii_alphabetic) {
        if let Some(f) = opening_fence(b) {
            *fence = Some(f);
            c[CODE_BLOCKS] += 1;
            return;
        }
        c[HEADERS] += u32::from(is_header(b));
        c[ORDERED] += u32::from(is_ordered_item(line));
        c[UNORDERED] += u32::from(is_unordered_item(line) && !is_thematic_break(b));
        c[TABLE_ROWS] += u32::from(is_table_row(line));
    }
    if flags & HAS_STARS != 0 {
        c[BOLD] += count_bold(line, b'*');
    }
    if flags & HAS_UNDERSCORES != 0 {
        c[BOLD] += count_bold(line, b'_');
    }
    if flags & (HAS_BRACKET | HAS_COLON) != 0 {
        c[LINKS] += count_links(line, flags & HAS_BRACKET != 0, flags & HAS_COLON != 0);
    }
}

/// Length of the run of `ch` starting at byte `i`.
fn run(b: &[u8], i: usize, ch: u8) -> usize {
    b.get(i..)
        .map_or(0, |s| s.iter().take_while(|&&x| x == ch).count())
}

/// Length of the run of spaces and tabs starting at byte `i`.
fn blanks(b: &[u8], i: usize) -> usize {
    b.get(i..).map_or(0, |s| {
        s.iter().take_while(|&&x| x == b' ' || x == b'\t').count()
    })
}

/// The code point starting at byte `i`, if `i` is a char boundary.
fn char_at(s: &str, i: usize) -> Option<char> {
    s.get(i..).and_then(|t| t.chars().next())
}

fn is_non_ws_at(s: &str, i: usize) -> bool {
    char_at(s, i).is_some_and(|ch| !ch.is_whitespace())
}

/// `` ^ {0,3}(`{3,}|~{3,}) ``: the fence character and full fence length.
fn opening_fence(b: &[u8]) -> Option<Fence> {
    let sp = run(b, 0, b' ');
    let ch = *b.get(sp)?;
    let len = run(b, sp, ch);
    (sp <= 3 && (ch == b'`' || ch == b'~') && len >= 3).then_some(Fence { ch, len })
}

/// `^ {0,3}C{n,}[ \t]*$` for the open fence's character C and length n.
fn closes_fence(b: &[u8], f: Fence) -> bool {
    let sp = run(b, 0, b' ');
    let len = run(b, sp, f.ch);
    sp <= 3 && len >= f.len && sp + len + blanks(b, sp + len) == b.len()
}

/// `^ {0,3}#{1,6}([ \t]|$)`.
fn is_header(b: &[u8]) -> bool {
    let sp = run(b, 0, b' ');
    let h = run(b, sp, b'#');
    sp <= 3 && (1..=6).contains(&h) && matches!(b.get(sp + h), None | Some(b' ' | b'\t'))
}

/// `^[ \t]*[0-9]{1,9}[.)][ \t]+\S`.
fn is_ordered_item(line: &str) -> bool {
    let b = line.as_bytes();
    let i = blanks(b, 0);
    let d = b[i..].iter().take_while(|x| x.is_ascii_digit()).count();
    let j = i + d;
    let gap = blanks(b, j + 1);
    (1..=9).contains(&d)
        && matches!(b.get(j), Some(b'.' | b')'))
        && gap > 0
        && is_non_ws_at(line, j + 1 + gap)
}

/// `^[ \t]*[-*+][ \t]+\S` (thematic breaks are excluded by the caller).
fn is_unordered_item(line: &str) -> bool {
    let b = line.as_bytes();
    let i = blanks(b, 0);
    let gap = blanks(b, i + 1);
    matches!(b.get(i), Some(b'-' | b'*' | b'+')) && gap > 0 && is_non_ws_at(line, i + 1 + gap)
}

/// `^ {0,3}([-*_])([ \t]*\1){2,}[ \t]*$`: three or more of one marker, with
/// only spaces and tabs between and after them.
#[allow(clippy::naive_bytecount)] // one short line: not worth a crate
fn is_thematic_break(b: &[u8]) -> bool {
    let sp = run(b, 0, b' ');
    let Some(&m) = b.get(sp) else {
        return false;
    };
    let rest = &b[sp..];
    sp <= 3
        && matches!(m, b'-' | b'*' | b'_')
        && rest.iter().all(|&x| x == m || x == b' ' || x == b'\t')
        && rest.iter().filter(|&&x| x == m).count() >= 3
}

/// Non-overlapping leftmost matches of `MM(?=\S).+?(?<=\S)MM` (M = `m`).
fn count_bold(line: &str, m: u8) -> u32 {
    let mut count = 0;
    let mut pos = 0;
    while let Some((open, first)) = find_bold_opener(line, pos, m) {
        // The content holds at least its first code point.
        let Some(close) = find_bold_closer(line, open + 2 + first.len_utf8(), m) else {
            break;
        };
        count += 1;
        pos = close + 2;
    }
    count
}

/// First `MM` at or after `pos` followed by a non-whitespace code point.
fn find_bold_opener(line: &str, pos: usize, m: u8) -> Option<(usize, char)> {
    let b = line.as_bytes();
    let mut i = pos;
    while let Some(at) = memchr(m, b.get(i..)?).map(|p| p + i) {
        if b.get(at + 1) == Some(&m) {
            if let Some(ch) = char_at(line, at + 2).filter(|c| !c.is_whitespace()) {
                return Some((at, ch));
            }
        }
        i = at + 1;
    }
    None
}

/// First `MM` at or after `from` preceded by a non-whitespace code point.
fn find_bold_closer(line: &str, from: usize, m: u8) -> Option<usize> {
    let b = line.as_bytes();
    let mut j = from;
    while let Some(at) = memchr(m, b.get(j..)?).map(|p| p + j) {
        if b.get(at + 1) == Some(&m) {
            let before = line.get(..at).and_then(|s| s.chars().next_back());
            if before.is_some_and(|c| !c.is_whitespace()) {
                return Some(at);
            }
        }
        j = at + 1;
    }
    None
}

/// Stripped line starts and ends with `|`, has two or more code points and
/// is not a delimiter row (only `|:-` spaces and tabs, with a `-`).
fn is_table_row(line: &str) -> bool {
    let s = line.trim().as_bytes();
    let delimiter = || s.iter().all(|x| b"|:- \t".contains(x)) && s.contains(&b'-');
    s.len() >= 2 && s[0] == b'|' && s[s.len() - 1] == b'|' && !delimiter()
}

/// Inline links `\[[^\[\]\n]*\]\([^()\s]*\)` plus `http://` / `https://`
/// occurrences outside them. An occurrence is wholly inside or outside a
/// link (it holds no `[` or `)`), so those inside are counted per link and
/// subtracted from the line total.
///
/// `bracket` and `colon` say whether the line holds a `[` and a `:`: with
/// no `[` there is no link to look for, with no `:` no URL.
fn count_links(line: &str, bracket: bool, colon: bool) -> u32 {
    let b = line.as_bytes();
    let urls = |s: &[u8]| if colon { count_urls(s) } else { 0 };
    let (mut links, mut urls_inside) = (0, 0);
    let mut i = 0;
    while let Some(k) = memchr(b'[', &b[i..]).map(|p| p + i).filter(|_| bracket) {
        match link_end(line, k) {
            Some(end) => {
                links += 1;
                urls_inside += urls(&b[k..end]);
                i = end;
            }
            None => i = k + 1,
        }
    }
    links + urls(b) - urls_inside
}

/// End (exclusive) of the inline link starting with the `[` at byte `k`.
fn link_end(line: &str, k: usize) -> Option<usize> {
    let b = line.as_bytes();
    let close = k + 1 + memchr2(b'[', b']', &b[k + 1..])?;
    if b[close] != b']' || b.get(close + 1) != Some(&b'(') {
        return None;
    }
    let mut j = close + 2;
    loop {
        match char_at(line, j)? {
            ')' => return Some(j + 1),
            '(' => return None,
            ch if ch.is_whitespace() => return None,
            ch => j += ch.len_utf8(),
        }
    }
}

static URL_SEPARATOR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("://"));

/// Occurrences of `http://` or `https://`: each `://` preceded by `http` or
/// `https` is one (the two cannot share a `://`).
fn count_urls(b: &[u8]) -> u32 {
    let is_url = |&p: &usize| b[..p].ends_with(b"http") || b[..p].ends_with(b"https");
    let n = URL_SEPARATOR.find_iter(b).filter(is_url).count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Pictographic blocks listed in the docs, skin-tone modifiers excluded.
fn is_emoji(ch: char) -> bool {
    matches!(u32::from(ch),
        0x1F300..=0x1F3FA | 0x1F400..=0x1F64F | 0x1F680..=0x1F6FF
        | 0x1F900..=0x1F9FF | 0x1FA70..=0x1FAFF | 0x2600..=0x27BF)
}

/// The first two bytes of each phrase as `first | second << 8`, and when
/// the second is `'`, also with U+2019's lead byte 0xE2 there; 0 pads (no
/// text byte pair gives 0, the first being a letter).
#[allow(clippy::cast_lossless)] // `u16::from` is not const
const fn openings(phrases: &[&str]) -> [u16; 32] {
    let mut out = [0u16; 32];
    let (mut k, mut n) = (0, 0);
    while k < phrases.len() {
        let p = phrases[k].as_bytes();
        let second = if p.len() > 1 { p[1] } else { 0 };
        out[n] = p[0] as u16 | (second as u16) << 8;
        n += 1;
        if second == b'\'' {
            out[n] = p[0] as u16 | 0xE2 << 8;
            n += 1;
        }
        k += 1;
    }
    out
}

static APOLOGY_OPENINGS: [u16; 32] = openings(&APOLOGY_PHRASES);
static REFUSAL_OPENINGS: [u16; 32] = openings(&REFUSAL_PHRASES);

/// End of the first phrase of `phrases` (in list order) that matches at
/// byte `i` and ends before a non-alphanumeric character or the text end.
fn first_phrase_at(b: &[u8], i: usize, phrases: &[&str]) -> Option<usize> {
    let first = b[i].to_ascii_lowercase();
    let second = b.get(i + 1).map_or(0, u8::to_ascii_lowercase);
    // Cheap rejection on the first two bytes (U+2019 starts with 0xE2).
    let plausible = |p: &[u8]| {
        p[0] == first
            && (p.len() == 1
                || p.get(1) == Some(&second)
                || (p.get(1) == Some(&b'\'') && second == 0xE2))
    };
    phrases
        .iter()
        .map(|p| p.as_bytes())
        .filter(|p| plausible(p))
        .find_map(|p| match_phrase(b, i, p))
}

/// End of `phrase` matched at byte `i` (ASCII case folded, `'` also as
/// U+2019), if the byte after it is no ASCII letter or digit (a non-ASCII
/// byte never is one, so a byte test suffices).
fn match_phrase(b: &[u8], i: usize, phrase: &[u8]) -> Option<usize> {
    const RIGHT_QUOTE: &[u8] = "\u{2019}".as_bytes();
    let mut j = i;
    for &p in phrase {
        let here = b.get(j..).unwrap_or_default();
        j += if p == b'\'' && here.starts_with(RIGHT_QUOTE) {
            RIGHT_QUOTE.len()
        } else if here.first().is_some_and(|x| x.to_ascii_lowercase() == p) {
            1
        } else {
            return None;
        };
    }
    let boundary_after = b.get(j).is_none_or(|x| !x.is_ascii_alphanumeric());
    boundary_after.then_some(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(text: &str, name: &str) -> u32 {
        let k = FEATURE_NAMES.iter().position(|&n| n == name).unwrap();
        features_of(text)[k]
    }

    #[test]
    fn chars_count_code_points_and_newlines() {
        assert_eq!(feature("", "chars"), 0);
        assert_eq!(feature("héllo\n", "chars"), 6);
        assert_eq!(feature("a\r\nb", "chars"), 4);
        assert_eq!(feature("👍🏽", "chars"), 2);
    }

    #[test]
    fn words_split_on_unicode_white_space_only() {
        assert_eq!(feature("  two\twords\n", "words"), 2);
        assert_eq!(feature("a\u{00A0}b\u{3000}c", "words"), 3);
        // Information separators are not White_Space: one word.
        assert_eq!(feature("a\u{1C}b\u{1F}c", "words"), 1);
        assert_eq!(feature(" \n\r\t ", "words"), 0);
    }

    #[test]
    fn headers_need_one_to_six_hashes_and_a_gap() {
        let text = "# a\n   ## b\n    # c\n####### d\n#e\n###\n###### f\r\n";
        assert_eq!(feature(text, "headers"), 4);
    }

    #[test]
    fn ordered_items_need_digits_marker_gap_and_text() {
        let text = "1. a\n  12) b\n1234567890. c\n1.d\n1. \n\t3.\tx\n٣. arabic\n";
        assert_eq!(feature(text, "ordered_items"), 3);
    }

    #[test]
    fn unordered_items_exclude_thematic_breaks() {
        let text = "- a\n * b\n+\tc\n-a\n- \n- - -\n* * *\n    - - -\n_ x\n";
        // "    - - -" has four spaces: no thematic break, so an item.
        assert_eq!(feature(text, "unordered_items"), 4);
    }

    #[test]
    fn thematic_break_rule() {
        assert!(is_thematic_break(b"---"));
        assert!(is_thematic_break(b"   _ _\t_  "));
        assert!(!is_thematic_break(b"- -"));
        assert!(!is_thematic_break(b"-*-"));
        assert!(!is_thematic_break(b"    ***"));
    }

    #[test]
    fn bold_is_leftmost_lazy_per_marker() {
        assert_eq!(feature("**a** and **b c**", "bold"), 2);
        assert_eq!(feature("** a** **b **", "bold"), 0);
        assert_eq!(feature("****", "bold"), 0);
        assert_eq!(feature("*****", "bold"), 1);
        assert_eq!(feature("***a**", "bold"), 1);
        assert_eq!(feature("**a**b**", "bold"), 1);
        assert_eq!(feature("__x__ **y** __z", "bold"), 2);
        assert_eq!(feature("**a\n**", "bold"), 0);
        assert_eq!(feature("**é**", "bold"), 1);
        assert_eq!(feature("**a\u{3000}**", "bold"), 0);
    }

    #[test]
    fn bold_scan_is_linear_on_many_openers() {
        let text = "**a ".repeat(100_000);
        assert_eq!(feature(&text, "bold"), 0);
    }

    #[test]
    fn code_blocks_and_code_skipping() {
        let text = "```py\n# no\n- no\n````\n# yes\n~~~~\n~~~\n```\n~~~~ \n## yes\n```";
        let f = features_of(text);
        assert_eq!(f[CODE_BLOCKS], 3);
        assert_eq!(f[HEADERS], 2);
        assert_eq!(f[UNORDERED], 0);
        // The unclosed fence hides the rest of the text.
        assert_eq!(feature("```\n# a\n**b**", "headers"), 0);
        assert_eq!(feature("    ```\n# a", "code_blocks"), 0);
        assert_eq!(feature("``\n# a", "headers"), 1);
    }

    #[test]
    fn table_rows_skip_delimiters() {
        let text = "| a | b |\n|---|:-:|\n  |x|  \n|\n||\n| - |\n|: :|\n";
        // "||" and "|: :|" (no dash) count; "|" is too short.
        assert_eq!(feature(text, "table_rows"), 4);
    }

    #[test]
    fn links_inline_and_bare() {
        assert_eq!(feature("[a](http://x.y) and https://z", "links"), 2);
        assert_eq!(feature("[a] (b) [c](d e) [[f](g)", "links"), 1);
        assert_eq!(feature("http://a http://b HTTP://c", "links"), 2);
        assert_eq!(feature("[x](https://a)https://b", "links"), 2);
        assert_eq!(feature("[](()", "links"), 0);
        assert_eq!(feature("[](\u{3000})", "links"), 0);
    }

    #[test]
    fn emojis_count_pictographs_not_modifiers() {
        assert_eq!(feature("hi 😀👍🏽☀✂", "emojis"), 4);
        // Family ZWJ sequence: three pictographs, the joiners do not count.
        assert_eq!(feature("👨\u{200D}👩\u{200D}👧", "emojis"), 3);
        assert_eq!(feature("🇫🇷 ©", "emojis"), 0);
    }

    #[test]
    fn phrases_respect_boundaries_and_ascii_case() {
        assert_eq!(
            feature("Sorry, SORRY! unsorry sorry2 _sorry_", "apologies"),
            3
        );
        assert_eq!(
            feature("I apologise; apologies. apologizing", "apologies"),
            3
        );
        assert_eq!(feature("I can\u{2019}t. i CANNOT. hi can't", "refusals"), 2);
        assert_eq!(feature("As an AI, I must decline.", "refusals"), 2);
        assert_eq!(feature("as an aim", "refusals"), 0);
        // Kelvin sign and long s do not fold to ASCII letters.
        assert_eq!(feature("\u{17F}orry", "apologies"), 0);
        assert_eq!(feature("ésorry", "apologies"), 1);
    }

    #[test]
    fn block_boundaries_do_not_change_counts() {
        let tail = " sorry I can\u{2019}t \u{1F600}\u{00A0}w";
        for pad in ["x", " ", "\u{e9}"] {
            for k in 0..140 {
                let text = format!("{}{tail}", pad.repeat(k));
                let f = features_of(&text);
                let pad_words = u32::from(k > 0 && pad != " ");
                assert_eq!(f[CHARS], u32::try_from(k).unwrap() + 18, "{text:?}");
                assert_eq!(f[WORDS], pad_words + 5, "{text:?}");
                assert_eq!(f[EMOJIS], 1, "{text:?}");
                assert_eq!((f[APOLOGIES], f[REFUSALS]), (1, 1), "{text:?}");
            }
        }
    }

    #[test]
    fn every_phrase_passes_the_opening_filter() {
        // The filter needs two bytes per phrase; each phrase, and its U+2019
        // spelling, opens with a listed pair.
        for (list, open) in [
            (&APOLOGY_PHRASES[..], &APOLOGY_OPENINGS),
            (&REFUSAL_PHRASES[..], &REFUSAL_OPENINGS),
        ] {
            for p in list {
                assert!(p.len() >= 2 && p.as_bytes()[0].is_ascii_lowercase(), "{p}");
                for text in [p.to_string(), p.replace('\'', "\u{2019}")] {
                    let b = text.as_bytes();
                    assert!(
                        open.contains(&(u16::from(b[0]) | u16::from(b[1]) << 8)),
                        "{p}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_phrase_is_a_block_opening_at_every_position() {
        for p in APOLOGY_PHRASES.iter().chain(&REFUSAL_PHRASES) {
            for upper in [false, true] {
                let p = if upper {
                    p.to_ascii_uppercase()
                } else {
                    (*p).to_string()
                };
                for j in 0..BLOCK {
                    let mut block = [b'.'; BLOCK];
                    let n = p.len().min(BLOCK - j);
                    block[j..j + n].copy_from_slice(&p.as_bytes()[..n]);
                    assert!(Masks::of(&block).opening >> j & 1 == 1, "{p} at {j}");
                }
            }
        }
        let block = *b"is it in an also and a sorry! as ap I'm i.ok s o x...............";
        let block: [u8; BLOCK] = block[..BLOCK].try_into().unwrap();
        // "so" inside "also" (14: word starts are checked later), "sorry"
        // (23), "as" (30), "ap" (33), "I'" (36); "a ", "is", "in" are not.
        let want = (1u64 << 14) | (1 << 23) | (1 << 30) | (1 << 33) | (1 << 36);
        assert_eq!(Masks::of(&block).opening, want);
    }

    #[test]
    fn block_masks_match_the_byte_predicates() {
        // Every byte value at every position, then pseudo-random blocks.
        let mut blocks: Vec<[u8; BLOCK]> = (0..4)
            .map(|k| std::array::from_fn(|j| u8::try_from(k * BLOCK + j).unwrap()))
            .collect();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            blocks.push(std::array::from_fn(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[3]
            }));
        }
        for block in &blocks {
            let m = Masks::of(block);
            assert_eq!(m, Masks::portable(block), "{block:?}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                assert_eq!(m, unsafe { Masks::of_avx2(block) }, "{block:?}");
            }
            for (j, &v) in block.iter().enumerate() {
                let bit = |mask: u64| mask >> j & 1 == 1;
                assert_eq!(bit(m.ws), (v as char).is_ascii_whitespace() || v == 0x0B);
                assert_eq!(bit(m.alnum), v.is_ascii_alphanumeric());
                assert_eq!(bit(m.nl), v == b'\n');
                assert_eq!(bit(m.non_ascii), !v.is_ascii());
            }
        }
    }

    #[test]
    fn lines_split_across_blocks_and_markers_stay_with_their_line() {
        // Line ends at every offset around the 64-byte blocks; a marker
        // (`**` of a bold) only on the line that holds it.
        for k in 0..200 {
            let text = format!("{}\n# h **b**\n{}\n- x\r\n", "a".repeat(k), "z".repeat(k));
            let f = features_of(&text);
            assert_eq!((f[HEADERS], f[BOLD], f[UNORDERED]), (1, 1, 1), "{k}");
            let text = format!("{}**\n{}**", "a".repeat(k), "b".repeat(k));
            assert_eq!(features_of(&text)[BOLD], 0, "{k}");
        }
    }

    #[test]
    fn batch_matches_single_texts_and_names_bad_rows() {
        let texts = ["# a", "", "sorry 😀", "| x |"];
        let mut offsets = vec![0i64];
        let mut data = Vec::new();
        for t in texts {
            data.extend_from_slice(t.as_bytes());
            offsets.push(i64::try_from(data.len()).unwrap());
        }
        let out = text_features(&offsets, &data).unwrap();
        for (row, t) in texts.iter().enumerate() {
            assert_eq!(
                out[row * N_FEATURES..(row + 1) * N_FEATURES],
                features_of(t)
            );
        }
        assert_eq!(
            text_features_with_threads(&offsets, &data, Some(2)).unwrap(),
            out
        );
        assert!(text_features(&[], &data).unwrap().is_empty());
        let err = |o: &[i64], d: &[u8]| text_features(o, d).unwrap_err().to_string();
        assert!(err(&[0, 3, 2], &data).contains("row 1"));
        assert!(err(&[-1, 2], &data).contains("row 0"));
        assert!(err(&[0, 1, 99], &data).contains("row 1"));
        assert!(err(&[0, 1, 2, 3], b"ab\xff").contains("row 2: invalid UTF-8"));
        assert!(text_features_with_threads(&offsets, &data, Some(0)).is_err());
    }
}
