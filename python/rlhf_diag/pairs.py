"""Preference pairs: every input format normalised to (prompt, chosen, rejected).

Formats
-------
``pairs``
    Text columns ``prompt`` / ``chosen`` / ``rejected`` (names overridable).
    The prompt column is optional.
``hh``
    HH-RLHF whole dialogues in ``chosen`` / ``rejected``. The prompt is the
    dialogue up to the last ``"\\n\\nAssistant:"`` marker lying wholly inside
    the common prefix of the two transcripts; each response is what follows,
    stripped of surrounding whitespace. A marker inside a final reply does not
    move the split. Rows that a naive split at each transcript's own last
    marker gets wrong are counted (``hh_naive_missplits``).
``messages``
    Chat-message lists ``[{role, content}]`` as in TRL's conversational
    format, with ``content`` a string or a list of ``{type: "text", text}``
    parts (joined with ``"\\n"``). Either an explicit ``prompt`` column of
    messages, or full conversations whose shared leading messages form the
    prompt. A response is the text of the messages after the prompt.
``alpaca_eval``
    AlpacaEval annotation records (``instruction``, ``output_1``, ``output_2``,
    ``preference``). ``preference`` above 1.5 means ``output_2`` won, below
    means ``output_1`` won; exactly 1.5 (and 0, an old encoding) is a draw;
    null is a failed annotation. Draws and failed annotations are skipped and
    counted by reason.

Rows are numbered from 0 in file order in every message and count.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from rlhf_diag import _core
from rlhf_diag._arrow import string_buffers
from rlhf_diag.exceptions import DataFormatError, InputError
from rlhf_diag.io import detect_table_format, read_table

log = logging.getLogger("rlhf_diag")

FORMATS = ("pairs", "hh", "messages", "alpaca_eval")
HH_MARKER = "\n\nAssistant:"
#: How many example row numbers are kept per skip reason.
N_EXAMPLE_ROWS = 5


@dataclass
class SkipLog:
    """Rows left out, counted by reason, with the first row numbers kept."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[int]] = field(default_factory=dict)

    def add(self, reason: str, rows) -> None:
        rows = [int(r) for r in rows]
        if not rows:
            return
        self.counts[reason] += len(rows)
        kept = self.examples.setdefault(reason, [])
        kept.extend(rows[: max(0, N_EXAMPLE_ROWS - len(kept))])

    def to_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def describe(self) -> list[str]:
        return [
            f"{n} row(s) skipped: {reason} (first rows: "
            f"{', '.join(map(str, self.examples[reason]))})"
            for reason, n in sorted(self.counts.items())
        ]


@dataclass
class PairSet:
    """A normalised preference set.

    Attributes
    ----------
    frame : polars.DataFrame
        Columns ``row`` (UInt32, the source row number), ``prompt``, ``chosen``,
        ``rejected`` (String, never null), then any other source columns.
    format : str
        The format the file was read as.
    n_rows_read : int
        Rows in the source, before any were skipped.
    skipped : SkipLog
        Rows left out, by reason.
    notes : dict
        Format-specific counts (``hh_naive_missplits`` and its example rows).
    source : str
    """

    frame: pl.DataFrame
    format: str
    n_rows_read: int
    skipped: SkipLog
    notes: dict
    source: str = ""

    @property
    def n_pairs(self) -> int:
        return self.frame.height


def _read_messages_records(path: Path) -> list[dict]:
    """Messages files hold a column whose type changes between rows (a string
    in one, a list of parts in the next), which a typed reader refuses: read
    them record by record."""
    fmt = detect_table_format(path)
    if fmt == "parquet" or fmt == "csv":
        return read_table(path, fmt).to_dicts()
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8")
    if text.lstrip().startswith("["):
        return json.loads(text)
    records = []
    for lineno, line in enumerate(text.splitlines()):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path}: line {lineno + 1}: {exc}") from None
    return records


# --------------------------------------------------------------------- detect


def _looks_like_messages(df: pl.DataFrame, chosen_col: str) -> bool:
    return chosen_col in df.columns and isinstance(df.schema[chosen_col], pl.List)


def detect_format(df: pl.DataFrame, prompt_col: str, chosen_col: str) -> str:
    """Guess the preference format of a frame from its columns and types."""
    cols = set(df.columns)
    if {"instruction", "output_1", "output_2", "preference"} <= cols:
        return "alpaca_eval"
    if _looks_like_messages(df, chosen_col):
        return "messages"
    if chosen_col in cols and prompt_col not in cols and df.schema[chosen_col] == pl.String:
        has_marker = df[chosen_col].str.contains(HH_MARKER, literal=True).any()
        if has_marker:
            return "hh"
    return "pairs"


def _require(df: pl.DataFrame, cols, fmt: str, source: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(
            f"{source}: column(s) {', '.join(map(repr, missing))} needed by format "
            f"{fmt!r} not found; columns are "
            f"{', '.join(c for c in df.columns if c != 'row')}"
        )


def _require_strings(df: pl.DataFrame, cols, source: str) -> None:
    for c in cols:
        if df.schema[c] not in (pl.String, pl.Null):
            raise InputError(
                f"{source}: column {c!r} must hold text, found {df.schema[c]}"
            )


def _drop_nulls(df: pl.DataFrame, cols, skipped: SkipLog) -> pl.DataFrame:
    for c in cols:
        bad = df.filter(pl.col(c).is_null())["row"]
        skipped.add(f"null {c}", bad.to_list())
        df = df.filter(pl.col(c).is_not_null())
    return df


# ------------------------------------------------------------------- formats


def _from_pairs(df, source, prompt_col, chosen_col, rejected_col):
    _require(df, [chosen_col, rejected_col], "pairs", source)
    has_prompt = prompt_col in df.columns
    _require_strings(df, [chosen_col, rejected_col] + ([prompt_col] if has_prompt else []), source)
    skipped = SkipLog()
    df = _drop_nulls(df, [chosen_col, rejected_col], skipped)
    notes = {}
    if has_prompt:
        notes["prompt_missing"] = int(df[prompt_col].null_count())
        prompt = pl.col(prompt_col).fill_null("")
    else:
        prompt = pl.lit("")
    out = df.with_columns(
        prompt=prompt,
        chosen=pl.col(chosen_col),
        rejected=pl.col(rejected_col),
    )
    dropped = {prompt_col, chosen_col, rejected_col} - {"prompt", "chosen", "rejected"}
    return out.drop([c for c in dropped if c in out.columns]), skipped, notes


def _from_hh(df, source, prompt_col, chosen_col, rejected_col):
    _require(df, [chosen_col, rejected_col], "hh", source)
    _require_strings(df, [chosen_col, rejected_col], source)
    skipped = SkipLog()
    df = _drop_nulls(df, [chosen_col, rejected_col], skipped)
    co, cd = string_buffers(df[chosen_col], chosen_col)
    ro, rd = string_buffers(df[rejected_col], rejected_col)
    splits = _core.split_dialogues(co, cd, ro, rd, HH_MARKER)
    end, naive_c, naive_r = splits[:, 0], splits[:, 1], splits[:, 2]
    no_marker = end < 0
    skipped.add("no assistant marker in the shared prefix", df["row"].filter(pl.Series(no_marker)).to_list())
    missplit = ~no_marker & ((naive_c != end) | (naive_r != end))
    miss_rows = df["row"].filter(pl.Series(missplit)).to_list()
    notes = {
        "hh_naive_missplits": len(miss_rows),
        "hh_naive_missplit_rows": miss_rows[:N_EXAMPLE_ROWS],
    }
    df = df.with_columns(_end=pl.Series(end)).filter(pl.col("_end") >= 0)
    out = df.with_columns(
        prompt=pl.col(chosen_col).str.slice(0, pl.col("_end")),
        chosen=pl.col(chosen_col).str.slice(pl.col("_end")).str.strip_chars(),
        rejected=pl.col(rejected_col).str.slice(pl.col("_end")).str.strip_chars(),
    ).drop("_end")
    return out, skipped, notes


def _from_alpaca_eval(df, source, prompt_col, chosen_col, rejected_col):
    cols = ["instruction", "output_1", "output_2", "preference"]
    _require(df, cols, "alpaca_eval", source)
    _require_strings(df, cols[:3], source)
    skipped = SkipLog()
    pref = pl.col("preference").cast(pl.Float64)
    df = df.with_columns(_pref=pref)
    skipped.add("failed annotation (null preference)", df.filter(pl.col("_pref").is_null())["row"].to_list())
    df = df.filter(pl.col("_pref").is_not_null())
    draw = (pl.col("_pref") == 1.5) | (pl.col("_pref") == 0.0)
    skipped.add("draw (preference 1.5, or 0 in the old encoding)", df.filter(draw)["row"].to_list())
    df = df.filter(~draw)
    bad = df.filter((pl.col("_pref") < 1.0) | (pl.col("_pref") > 2.0))
    if bad.height:
        raise InputError(
            f"{source}: preference outside [1, 2] on {bad.height} row(s), e.g. row "
            f"{bad['row'][0]} has {bad['_pref'][0]}"
        )
    df = _drop_nulls(df, ["output_1", "output_2"], skipped)
    second = pl.col("_pref") > 1.5
    out = df.with_columns(
        prompt=pl.col("instruction").fill_null(""),
        chosen=pl.when(second).then(pl.col("output_2")).otherwise(pl.col("output_1")),
        rejected=pl.when(second).then(pl.col("output_1")).otherwise(pl.col("output_2")),
        chosen_side=pl.when(second).then(2).otherwise(1).cast(pl.UInt8),
    ).drop("_pref")
    return out, skipped, {}


def _content_text(content, where: str) -> str:
    """Canonical text of a message's content: a string as is, a list of text
    parts joined with a newline. Anything else is an error naming ``where``."""
    if isinstance(content, str):
        return content
    if content is None:
        raise InputError(f"{where}.content is null")
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type", "text") != "text":
                raise InputError(f"{where}.content[{j}] is not a text part: {part!r:.80}")
            text = part.get("text")
            if not isinstance(text, str):
                raise InputError(f"{where}.content[{j}].text is not a string: {text!r:.80}")
            texts.append(text)
        return "\n".join(texts)
    raise InputError(f"{where}.content must be a string or a list of text parts, found {type(content).__name__}")


def _messages(value, where: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [("assistant", value)]
    if not isinstance(value, list):
        raise InputError(f"{where} must be a list of messages, found {type(value).__name__}")
    out = []
    for k, msg in enumerate(value):
        if not isinstance(msg, dict) or "role" not in msg:
            raise InputError(f"{where}[{k}] is not a message with a role: {msg!r:.80}")
        out.append((str(msg["role"]), _content_text(msg.get("content"), f"{where}[{k}]")))
    return out


def _render(msgs: list[tuple[str, str]]) -> str:
    return "\n\n".join(f"{role}: {text}" for role, text in msgs)


def _from_messages(records, source, prompt_col, chosen_col, rejected_col):
    skipped = SkipLog()
    rows, prompts, chosen, rejected, extra = [], [], [], [], []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or chosen_col not in rec or rejected_col not in rec:
            raise InputError(f"{source}: row {i}: needs {chosen_col!r} and {rejected_col!r}")
        try:
            c = _messages(rec[chosen_col], f"row {i}: {chosen_col}")
            r = _messages(rec[rejected_col], f"row {i}: {rejected_col}")
            p = _messages(rec[prompt_col], f"row {i}: {prompt_col}") if rec.get(prompt_col) is not None else None
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None
        if p is None:
            k = 0
            while k < min(len(c), len(r)) - 1 and c[k] == r[k]:
                k += 1
            p, c, r = c[:k], c[k:], r[k:]
        if not c or not r:
            skipped.add("no response after the prompt", [i])
            continue
        rows.append(i)
        prompts.append(_render(p))
        chosen.append("\n\n".join(t for _, t in c))
        rejected.append("\n\n".join(t for _, t in r))
        extra.append({k: v for k, v in rec.items() if k not in (prompt_col, chosen_col, rejected_col) and not isinstance(v, (list, dict))})
    frame = pl.DataFrame({"row": rows, "prompt": prompts, "chosen": chosen, "rejected": rejected}, schema_overrides={"row": pl.UInt32, "prompt": pl.String, "chosen": pl.String, "rejected": pl.String})
    if extra and any(extra):
        frame = pl.concat([frame, pl.DataFrame(extra, infer_schema_length=None)], how="horizontal")
    return frame, skipped, {}, len(records)


# ---------------------------------------------------------------------- entry

_NORMALISERS = {"pairs": _from_pairs, "hh": _from_hh, "alpaca_eval": _from_alpaca_eval}


def load_pairs(
    path: str | Path,
    format: str | None = None,
    *,
    prompt_col: str = "prompt",
    chosen_col: str = "chosen",
    rejected_col: str = "rejected",
) -> PairSet:
    """Read a preference file into a :class:`PairSet`.

    Parameters
    ----------
    path
        JSONL (plain or gzip), JSON, CSV or Parquet.
    format
        One of :data:`FORMATS`, or None to detect it from the columns: AlpacaEval
        annotation columns → ``alpaca_eval``; message lists → ``messages``; text
        with ``"\\n\\nAssistant:"`` markers and no prompt column → ``hh``; else
        ``pairs``.
    prompt_col, chosen_col, rejected_col
        Column names (``pairs`` and ``messages`` formats).

    Raises
    ------
    DataFormatError
        The file is missing or unreadable (the message names it).
    InputError
        A needed column is missing, or a row breaks the format (the message
        names the row and the field, e.g. ``row 3: chosen[1].content is null``).
    """
    path = Path(path)
    source = str(path)
    if format is not None and format not in FORMATS:
        raise InputError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    df = None
    if format != "messages":
        try:
            df = read_table(path)
        except DataFormatError:
            # A column whose type changes between rows (string content in one
            # message, a list of parts in the next) defeats the typed reader.
            if format not in (None, "messages") or not path.is_file():
                raise
        if df is not None and format is None:
            format = detect_format(df, prompt_col, chosen_col)
        elif df is None:
            format = "messages"
    if format == "messages":
        # polars unifies a content that is a string in one row and a list of
        # parts in the next by turning the list into its JSON text: read JSON
        # record by record instead.
        typed = df is not None and detect_table_format(path) in ("parquet", "csv")
        records = df.to_dicts() if typed else _read_messages_records(path)
        frame, skipped, notes, n_read = _from_messages(records, source, prompt_col, chosen_col, rejected_col)
    else:
        n_read = df.height
        df = df.with_row_index("row")
        frame, skipped, notes = _NORMALISERS[format](df, source, prompt_col, chosen_col, rejected_col)
    front = ["row", "prompt", "chosen", "rejected"]
    frame = frame.select(front + [c for c in frame.columns if c not in front])
    log.info("%s: read %d rows as %r, kept %d pairs", source, n_read, format, frame.height)
    return PairSet(frame=frame, format=format, n_rows_read=n_read, skipped=skipped, notes=notes, source=source)
