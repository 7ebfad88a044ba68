"""Slow, readable implementations of the twelve text features.

:func:`reference_features` restates ``docs/features.md`` with Python's ``re``,
one text at a time; it is the oracle that the Rust engine is tested against.
:func:`polars_features` computes the same counts with polars expressions, as
a benchmark peer. Neither is meant for production use.
"""

from __future__ import annotations

import re

import polars as pl

FEATURES: tuple[str, ...] = (
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
)

APOLOGY_PHRASES: tuple[str, ...] = (
    "sorry",
    "apologize",
    "apologise",
    "apologies",
    "apologizing",
    "apologising",
)

REFUSAL_PHRASES: tuple[str, ...] = (
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
)

# Unicode White_Space, written out: Python's own ``\s`` and ``str.split`` also
# treat U+001C..U+001F as whitespace, which the definition excludes.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_WS = re.escape(WHITESPACE)
_NON_WS = f"[^{_WS}]"

_WORD = re.compile(f"{_NON_WS}+")
_OPEN_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_HEADER = re.compile(r" {0,3}#{1,6}(?:[ \t]|$)")
_ORDERED = re.compile(rf"[ \t]*[0-9]{{1,9}}[.)][ \t]+{_NON_WS}")
_UNORDERED = re.compile(rf"[ \t]*[-*+][ \t]+{_NON_WS}")
_THEMATIC = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
_BOLD_STARS = re.compile(rf"\*\*(?={_NON_WS}).+?(?<={_NON_WS})\*\*")
_BOLD_UNDERSCORES = re.compile(rf"__(?={_NON_WS}).+?(?<={_NON_WS})__")
_DELIMITER_ROW = re.compile(r"[|:\- \t]*")
_LINK = re.compile(rf"\[[^\[\]\n]*\]\([^(){_WS}]*\)")
_URL = re.compile(r"https?://")
_EMOJI_RANGES = (
    (0x1F300, 0x1F5FF),
    (0x1F600, 0x1F64F),
    (0x1F680, 0x1F6FF),
    (0x1F900, 0x1F9FF),
    (0x1FA70, 0x1FAFF),
    (0x2600, 0x26FF),
    (0x2700, 0x27BF),
)
_SKIN_TONES = (0x1F3FB, 0x1F3FF)
# The ranges as one character class, with the skin-tone modifiers cut out.
_EMOJI = re.compile(
    "["
    + "".join(
        f"{chr(lo)}-{chr(hi)}"
        for lo, hi in ((0x1F300, _SKIN_TONES[0] - 1), (_SKIN_TONES[1] + 1, 0x1F5FF))
        + _EMOJI_RANGES[1:]
    )
    + "]"
)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _phrase_regex(phrases: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(p) for p in phrases)
    return re.compile(f"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")


_APOLOGY = _phrase_regex(APOLOGY_PHRASES)
_REFUSAL = _phrase_regex(REFUSAL_PHRASES)


def _is_table_row(line: str) -> bool:
    s = line.strip(WHITESPACE)
    if len(s) < 2 or s[0] != "|" or s[-1] != "|":
        return False
    is_delimiter = _DELIMITER_ROW.fullmatch(s) is not None and "-" in s
    return not is_delimiter


def _count_links(line: str) -> int:
    spans = [m.span() for m in _LINK.finditer(line)]
    bare = [
        m.start()
        for m in _URL.finditer(line)
        if not any(a <= m.start() < b for a, b in spans)
    ]
    return len(spans) + len(bare)


def _markdown_counts(line: str, counts: dict[str, int]) -> None:
    counts["headers"] += _HEADER.match(line) is not None
    counts["ordered_items"] += _ORDERED.match(line) is not None
    is_item = _UNORDERED.match(line) is not None
    counts["unordered_items"] += is_item and _THEMATIC.fullmatch(line) is None
    counts["bold"] += len(_BOLD_STARS.findall(line))
    counts["bold"] += len(_BOLD_UNDERSCORES.findall(line))
    counts["table_rows"] += _is_table_row(line)
    counts["links"] += _count_links(line)


def reference_features(text: str) -> dict[str, int]:
    """Compute the twelve text features of one string, slowly.

    Parameters
    ----------
    text : str
        One response text.

    Returns
    -------
    dict of str to int
        The counts, keyed by the names in :data:`FEATURES`, in that order.

    Notes
    -----
    This is the written specification of ``docs/features.md`` as code: each
    rule is one Python regular expression applied line by line, with the
    fenced-code state machine deciding which lines the markdown rules see.
    """
    counts = dict.fromkeys(FEATURES, 0)
    counts["chars"] = len(text)
    counts["words"] = len(_WORD.findall(text))
    counts["emojis"] = len(_EMOJI.findall(text))
    folded = text.replace("\u2019", "'").translate(_ASCII_LOWER)
    counts["apologies"] = len(_APOLOGY.findall(folded))
    counts["refusals"] = len(_REFUSAL.findall(folded))

    fence: tuple[str, int] | None = None  # (character, length) of the open fence
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        if fence is not None:
            char, length = fence
            closing = rf" {{0,3}}{re.escape(char)}{{{length},}}[ \t]*"
            if re.fullmatch(closing, line):
                fence = None
            continue
        opening = _OPEN_FENCE.match(line)
        if opening:
            fence = (opening.group(1)[0], len(opening.group(1)))
            counts["code_blocks"] += 1
            continue
        _markdown_counts(line, counts)
    return counts


# Polars (Rust `regex` crate) patterns: no look-around and no back-references,
# so the bold rule is rewritten without them and the thematic break is spelled
# out per marker. `\S` and `\s` there already mean Unicode White_Space.
_PL_BOLD_STARS = r"\*\*\S(?:.*?\S)??\*\*"
_PL_BOLD_UNDERSCORES = r"__\S(?:.*?\S)??__"
_PL_THEMATIC = r"^ {0,3}(?:-(?:[ \t]*-){2,}|\*(?:[ \t]*\*){2,}|_(?:[ \t]*_){2,})[ \t]*$"
_PL_LINK = r"\[[^\[\]\n]*\]\([^()\s]*\)"
_PL_EMOJI = (
    r"[\x{1F300}-\x{1F3FA}\x{1F400}-\x{1F64F}\x{1F680}-\x{1F6FF}"
    r"\x{1F900}-\x{1F9FF}\x{1FA70}-\x{1FAFF}\x{2600}-\x{27BF}]"
)


def _pl_phrases(phrases: tuple[str, ...]) -> str:
    alternatives = "|".join(re.escape(p) for p in phrases)
    return rf"(?-u:\b)(?i-u:{alternatives})(?-u:\b)"


def _polars_line_counts(lines: pl.LazyFrame) -> pl.LazyFrame:
    line = pl.col("line")
    stripped = line.str.strip_chars()
    is_fence = line.str.contains(r"^ {0,3}(?:```|~~~)")
    is_table = (
        stripped.str.starts_with("|")
        & stripped.str.ends_with("|")
        & (stripped.str.len_chars() >= 2)
        & ~(
            stripped.str.contains(r"^[|:\- \t]*$")
            & stripped.str.contains("-", literal=True)
        )
    )
    urls_outside = line.str.replace_all(_PL_LINK, " ").str.count_matches("https?://")
    return lines.group_by("row", maintain_order=True).agg(
        headers=line.str.contains(r"^ {0,3}#{1,6}(?:[ \t]|$)").sum(),
        ordered_items=line.str.contains(r"^[ \t]*[0-9]{1,9}[.)][ \t]+\S").sum(),
        unordered_items=(
            line.str.contains(r"^[ \t]*[-*+][ \t]+\S")
            & ~line.str.contains(_PL_THEMATIC)
        ).sum(),
        bold=(
            line.str.count_matches(_PL_BOLD_STARS)
            + line.str.count_matches(_PL_BOLD_UNDERSCORES)
        ).sum(),
        fence_lines=is_fence.sum(),
        table_rows=is_table.sum(),
        links=(line.str.count_matches(_PL_LINK) + urls_outside).sum(),
    )


def polars_features(series: pl.Series) -> pl.DataFrame:
    """Compute the twelve text features with polars expressions.

    A benchmark peer for the Rust engine: the usual way to get these counts
    without it. Rows are split into lines with ``str.split`` and ``explode``
    and the line rules run as vectorised regular expressions.

    Parameters
    ----------
    series : polars.Series
        String column without nulls.

    Returns
    -------
    polars.DataFrame
        One UInt32 column per name in :data:`FEATURES`.

    Notes
    -----
    Exact, on texts without code fences, for every feature: the bold rule is
    rewritten without look-around (``\\*\\*\\S(?:.*?\\S)??\\*\\*`` visits the
    same candidate ends in the same order), the thematic break without a
    back-reference, and the phrase boundary with ASCII ``\\b`` after turning
    ``_`` (an ASCII word character there, not here) into a space.

    Approximate where code fences occur: the fence state machine is
    sequential and has no expression form, so no line is skipped as code,
    and ``code_blocks`` is estimated as ``ceil(fence-like lines / 2)``.
    """
    texts = series.cast(pl.String)
    frame = pl.DataFrame({"text": texts}).with_row_index("row")
    phrase_text = (
        pl.col("text")
        .str.replace_all("\u2019", "'", literal=True)
        .str.replace_all("_", " ", literal=True)
    )
    whole = frame.lazy().select(
        "row",
        chars=pl.col("text").str.len_chars(),
        words=pl.col("text").str.count_matches(r"\S+"),
        emojis=pl.col("text").str.count_matches(_PL_EMOJI),
        apologies=phrase_text.str.count_matches(_pl_phrases(APOLOGY_PHRASES)),
        refusals=phrase_text.str.count_matches(_pl_phrases(REFUSAL_PHRASES)),
    )
    lines = (
        frame.lazy()
        .select("row", line=pl.col("text").str.split("\n"))
        .explode("line")
        .with_columns(pl.col("line").str.strip_suffix("\r"))
    )
    per_line = _polars_line_counts(lines).with_columns(
        code_blocks=(pl.col("fence_lines") + 1) // 2
    )
    out = whole.join(per_line, on="row", how="left", maintain_order="left")
    return out.select(pl.col(name).cast(pl.UInt32) for name in FEATURES).collect()
