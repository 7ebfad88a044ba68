//! Pair-level text operations: splitting whole HH-RLHF dialogues into a
//! shared prompt and two responses.
//!
//! Method. Chosen and rejected transcripts share every turn but the last
//! assistant reply. The prompt ends at the last assistant marker lying wholly
//! inside their common prefix. Splitting each transcript at its *own* last
//! marker (the "naive" split) is wrong whenever a final reply itself contains
//! the marker; both splits are returned so the caller can count the rows the
//! naive rule gets wrong.
//!
//! Rejected alternative: a regex or per-turn parse of each transcript. It
//! needs the same common-prefix reasoning to be right and costs an
//! allocation per row; a byte scan over Arrow buffers needs none.

use rayon::prelude::*;

use crate::error::Result;
use crate::invalid;
use crate::text::validate_offsets;

/// Split points of one pair, in characters (Unicode code points) from each
/// string's start, so that callers can slice with character-based string
/// functions: `prompt_end` is where the shared prompt ends (just after the
/// marker, `-1` when no marker lies inside the common prefix);
/// `naive_chosen` / `naive_rejected` end the prompt at each transcript's own
/// last marker (`-1` when it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub prompt_end: i64,
    pub naive_chosen: i64,
    pub naive_rejected: i64,
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (0..=hay.len() - needle.len())
        .rev()
        .find(|&i| &hay[i..i + needle.len()] == needle)
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Split one pair of transcripts (see [`Split`]).
pub fn split_one(chosen: &[u8], rejected: &[u8], marker: &[u8]) -> Split {
    // Characters before byte `end`: every byte that does not continue a
    // multi-byte sequence starts a character.
    let chars_to = |s: &[u8], end: usize| s[..end].iter().filter(|&&b| (b as i8) >= -0x40).count();
    let end_after =
        |s: &[u8], pos: Option<usize>| pos.map_or(-1, |p| chars_to(s, p + marker.len()) as i64);
    let shared = common_prefix(chosen, rejected);
    Split {
        prompt_end: end_after(chosen, rfind(&chosen[..shared], marker)),
        naive_chosen: end_after(chosen, rfind(chosen, marker)),
        naive_rejected: end_after(rejected, rfind(rejected, marker)),
    }
}

/// Split `n` pairs given as two Arrow large-string columns.
pub fn split_dialogues(
    chosen_offsets: &[i64],
    chosen_data: &[u8],
    rejected_offsets: &[i64],
    rejected_data: &[u8],
    marker: &[u8],
) -> Result<Vec<Split>> {
    let n = validate_offsets("chosen", chosen_offsets, chosen_data.len())?;
    let m = validate_offsets("rejected", rejected_offsets, rejected_data.len())?;
    if n != m {
        return Err(invalid!("chosen has {n} rows but rejected has {m}"));
    }
    if marker.is_empty() {
        return Err(invalid!("the assistant marker must not be empty"));
    }
    Ok((0..n)
        .into_par_iter()
        .map(|i| {
            let c = &chosen_data[chosen_offsets[i] as usize..chosen_offsets[i + 1] as usize];
            let r = &rejected_data[rejected_offsets[i] as usize..rejected_offsets[i + 1] as usize];
            split_one(c, r, marker)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &[u8] = b"\n\nAssistant:";

    #[test]
    fn two_turn_dialogue_splits_at_second_marker() {
        let p = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how?\n\nAssistant:";
        let c = format!("{p} like this");
        let r = format!("{p} no idea");
        let s = split_one(c.as_bytes(), r.as_bytes(), M);
        assert_eq!(s.prompt_end as usize, p.len());
        assert_eq!(s.naive_chosen, s.prompt_end);
    }

    #[test]
    fn marker_inside_final_reply_does_not_move_split() {
        let p = "\n\nHuman: q\n\nAssistant:";
        let c = format!("{p} a\n\nAssistant: b");
        let r = format!("{p} other");
        let s = split_one(c.as_bytes(), r.as_bytes(), M);
        assert_eq!(s.prompt_end as usize, p.len());
        assert!(s.naive_chosen as usize > p.len());
        assert_eq!(s.naive_rejected as usize, p.len());
    }

    #[test]
    fn split_points_count_characters_not_bytes() {
        let p = "\n\nHuman: caf\u{e9}?\n\nAssistant:";
        let s = split_one(
            format!("{p} oui").as_bytes(),
            format!("{p} non").as_bytes(),
            M,
        );
        assert_eq!(s.prompt_end as usize, p.chars().count());
        assert_eq!(p.len(), p.chars().count() + 1);
    }

    #[test]
    fn no_marker_in_common_prefix() {
        let s = split_one(b"\n\nHuman: a", b"\n\nHuman: b", M);
        assert_eq!(s.prompt_end, -1);
    }

    #[test]
    fn bad_offsets_are_errors_naming_the_row() {
        let e = split_dialogues(&[0, 3, 2], b"abc", &[0, 1, 2], b"ab", M).unwrap_err();
        assert!(e.to_string().contains("row 1"), "{e}");
        let e = split_dialogues(&[0, 1], b"a", &[0, 9], b"abc", M).unwrap_err();
        assert!(
            e.to_string()
                .contains("rejected offsets: row 0 ends at 9, past the end"),
            "{e}"
        );
        assert!(split_dialogues(&[0, 1], b"a", &[0, 1, 2], b"ab", M).is_err());
    }
}
