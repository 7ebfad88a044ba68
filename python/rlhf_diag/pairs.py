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

import io
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from rlhf_diag import _core
from rlhf_diag._arrow import string_buffers
from rlhf_diag.exceptions import DataFormatError, InputError
from rlhf_diag.io import detect_table_format, read_bytes, read_table

log = logging.getLogger("rlhf_diag")

FORMATS = ("pairs", "hh", "messages", "alpaca_eval")
HH_MARKER = "\n\nAssistant:"
#: The same marker in files written with Windows line endings.
HH_MARKER_CRLF = "\r\n\r\nAssistant:"
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


def _read_json_records(path: Path) -> list[dict]:
    """Read a JSON / JSONL file record by record with Python's json module.

    Used where a typed reader cannot be: message files whose ``content`` is a
    string in one row and a list of parts in the next (polars would turn the
    list into its JSON text), and files holding ``NaN`` / ``Infinity`` tokens.
    A line that is not JSON is an error naming the line.
    """
    raw = read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{path}: not UTF-8 text ({exc})") from None
    if text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{path}: not valid JSON ({exc})") from None
    records = []
    for lineno, line in enumerate(text.splitlines()):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path}: line {lineno + 1}: {exc}") from None
    return records


def _kind(value) -> str:
    if value is None:
        return "null"
    return {str: "text", bool: "a boolean", int: "a number", float: "a number",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _frame_from_records(records: list[dict], source: str) -> pl.DataFrame:
    """A frame from parsed records, refusing a column whose type changes
    between rows (naming the row) instead of coercing it."""
    first: dict[str, tuple[str, int]] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InputError(f"{source}: row {i} is {_kind(rec)}, not a record")
        for key, value in rec.items():
            kind = _kind(value)
            if kind == "null":
                continue
            seen = first.setdefault(key, (kind, i))
            if seen[0] != kind:
                raise InputError(
                    f"{source}: row {i}: {key!r} is {kind}, but row {seen[1]} has {seen[0]}"
                )
    return pl.DataFrame(records, infer_schema_length=None)


def _check_jsonl_text(path: Path, columns, source: str) -> None:
    """polars reads a JSONL number or list in a text column as text; check
    with pyarrow's strict JSON reader that the named columns hold only text
    (or null), naming the first row that does not."""
    import pyarrow as pa
    import pyarrow.json as pj

    raw = read_bytes(path)
    schema = pa.schema([(c, pa.string()) for c in columns])
    try:
        pj.read_json(
            io.BytesIO(raw),
            read_options=pj.ReadOptions(block_size=len(raw) + 1),
            parse_options=pj.ParseOptions(explicit_schema=schema,
                                          unexpected_field_behavior="ignore"),
        )
    except pa.ArrowInvalid as exc:
        msg = str(exc).replace("JSON parse error: ", "")
        raise InputError(f"{source}: {msg} (columns {', '.join(columns)} must hold text)") from None


# --------------------------------------------------------------------- detect


def _looks_like_messages(df: pl.DataFrame, chosen_col: str) -> bool:
    return chosen_col in df.columns and isinstance(df.schema[chosen_col], pl.List)


def _marker_of(text: str) -> str | None:
    if HH_MARKER_CRLF in text:
        return HH_MARKER_CRLF
    return HH_MARKER if HH_MARKER in text else None


def detect_format(df: pl.DataFrame, prompt_col: str, chosen_col: str) -> str:
    """Guess the preference format of a frame from its columns and types."""
    cols = set(df.columns)
    if {"instruction", "output_1", "output_2", "preference"} <= cols:
        return "alpaca_eval"
    if _looks_like_messages(df, chosen_col):
        return "messages"
    if chosen_col in cols and prompt_col not in cols and df.schema[chosen_col] == pl.String:
        col = df[chosen_col]
        has_marker = (col.str.contains(HH_MARKER, literal=True).any()
                      or col.str.contains(HH_MARKER_CRLF, literal=True).any())
        if has_marker:
            return "hh"
    return "pairs"


def _detect_records_format(records, prompt_col: str, chosen_col: str) -> str:
    """:func:`detect_format` for records parsed with Python's json."""
    keys = set().union(*(r.keys() for r in records if isinstance(r, dict))) if records else set()
    if {"instruction", "output_1", "output_2", "preference"} <= keys:
        return "alpaca_eval"
    if any(isinstance(r, dict) and isinstance(r.get(chosen_col), list) for r in records):
        return "messages"
    if chosen_col in keys and prompt_col not in keys and any(
            isinstance(r, dict) and isinstance(r.get(chosen_col), str)
            and _marker_of(r[chosen_col]) for r in records[:1000]):
        return "hh"
    return "pairs"


def _text_columns(fmt, df, prompt_col, chosen_col, rejected_col) -> list[str]:
    if fmt == "alpaca_eval":
        cols = ["instruction", "output_1", "output_2"]
    else:
        cols = [chosen_col, rejected_col] + ([prompt_col] if fmt == "pairs" else [])
    return [c for c in cols if c in df.columns]


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
    # One marker per file: CRLF files carry "\r\n\r\nAssistant:", which
    # does not contain the LF marker.
    n_crlf = int(df[chosen_col].str.contains(HH_MARKER_CRLF, literal=True).sum())
    marker = HH_MARKER_CRLF if 2 * n_crlf > df.height else HH_MARKER
    splits = _core.split_dialogues(co, cd, ro, rd, marker)
    end, naive_c, naive_r = splits[:, 0], splits[:, 1], splits[:, 2]
    no_marker = end < 0
    skipped.add("no assistant marker in the shared prefix", df["row"].filter(pl.Series(no_marker)).to_list())
    missplit = ~no_marker & ((naive_c != end) | (naive_r != end))
    miss_rows = df["row"].filter(pl.Series(missplit)).to_list()
    notes = {
        "hh_marker": marker,
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
    if not df.schema["preference"].is_numeric() and df.schema["preference"] != pl.Null:
        raise InputError(
            f"{source}: 'preference' must hold numbers in [1, 2] (or null), found "
            f"{df.schema['preference']}"
        )
    skipped = SkipLog()
    df = df.with_columns(_pref=pl.col("preference").cast(pl.Float64))
    nan = df.filter(pl.col("_pref").is_nan())
    if nan.height:
        raise InputError(f"{source}: preference is NaN on {nan.height} row(s), the first "
                         f"row {nan['row'][0]}; a failed annotation is null")
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
    """Normalise message-list records. The prompt is the explicit prompt
    column, or else the messages the two conversations share before they
    differ; what follows must be assistant messages on both sides (their
    texts joined by a blank line), else the row is skipped and counted."""
    if not records:
        raise InputError(f"{source}: the file holds no rows")
    for col in (chosen_col, rejected_col):
        if not any(isinstance(r, dict) and col in r for r in records):
            raise InputError(f"{source}: no record has the key {col!r} (format 'messages')")
    skipped = SkipLog()
    rows, prompts, chosen, rejected, extra = [], [], [], [], []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InputError(f"{source}: row {i} is {_kind(rec)}, not a record")
        if rec.get(chosen_col) is None or rec.get(rejected_col) is None:
            skipped.add(f"null {chosen_col if rec.get(chosen_col) is None else rejected_col}", [i])
            continue
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
        if any(role != "assistant" for role, _ in c + r):
            skipped.add("chosen and rejected differ outside the final assistant reply", [i])
            continue
        rows.append(i)
        prompts.append(_render(p))
        chosen.append("\n\n".join(t for _, t in c))
        rejected.append("\n\n".join(t for _, t in r))
        extra.append({k: v for k, v in rec.items()
                      if k not in (prompt_col, chosen_col, rejected_col)
                      and not isinstance(v, (list, dict))})
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
    prompt_col: str | None = None,
    chosen_col: str = "chosen",
    rejected_col: str = "rejected",
    file_type: str | None = None,
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
        Column names (``pairs`` and ``messages`` formats). The prompt column
        is optional: by default ``prompt`` is used when the file has one; a
        name given here must exist.
    file_type
        ``jsonl``, ``json``, ``csv`` or ``parquet``; detected from the file
        name when None.

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
    prompt_named = prompt_col is not None
    prompt_col = prompt_col if prompt_named else "prompt"
    if format is not None and format not in FORMATS:
        raise InputError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    file_type = file_type or detect_table_format(path)
    json_like = file_type in ("json", "jsonl")
    df = records = None
    try:
        df = read_table(path, file_type)
    except DataFormatError:
        # A column whose type changes between rows, or NaN / Infinity tokens,
        # defeat the typed reader: parse record by record instead.
        if not json_like or not path.is_file():
            raise
        records = _read_json_records(path)
    if format is None:
        format = (detect_format(df, prompt_col, chosen_col) if df is not None
                  else _detect_records_format(records, prompt_col, chosen_col))
    if prompt_named and format in ("pairs", "messages"):
        present = (prompt_col in df.columns if df is not None
                   else any(isinstance(r, dict) and prompt_col in r for r in records))
        if not present:
            raise InputError(f"{source}: no prompt column {prompt_col!r}")
    if format == "messages":
        # polars unifies a content that is a string in one row and a list of
        # parts in the next by turning the list into its JSON text, so JSON
        # messages are always read record by record.
        if records is None:
            records = _read_json_records(path) if json_like else df.to_dicts()
        frame, skipped, notes, n_read = _from_messages(records, source, prompt_col, chosen_col, rejected_col)
    else:
        if df is None:
            df = _frame_from_records(records, source)
        elif file_type == "jsonl":
            _check_jsonl_text(path, _text_columns(format, df, prompt_col, chosen_col, rejected_col), source)
        if df.height == 0:
            raise InputError(f"{source}: the file holds no rows")
        n_read = df.height
        df = df.with_row_index("row")
        frame, skipped, notes = _NORMALISERS[format](df, source, prompt_col, chosen_col, rejected_col)
    front = ["row", "prompt", "chosen", "rejected"]
    frame = frame.select(front + [c for c in frame.columns if c not in front])
    log.info("%s: read %d rows as %r, kept %d pairs", source, n_read, format, frame.height)
    return PairSet(frame=frame, format=format, n_rows_read=n_read, skipped=skipped, notes=notes, source=source)
