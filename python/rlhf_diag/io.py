"""Reading input files into polars frames.

Every reader here takes its schema from the whole file, never from the first
rows: a key first seen on row 120 of a JSONL file survives. Compressed input
(``.gz``) is decompressed in memory. A missing or unreadable file raises
:class:`~rlhf_diag.exceptions.DataFormatError` naming the file.
"""

from __future__ import annotations

import gzip
import zlib
import io
import logging
from pathlib import Path

import polars as pl

from rlhf_diag.exceptions import DataFormatError

log = logging.getLogger("rlhf_diag")

#: Table formats understood by :func:`read_table`.
TABLE_FORMATS = ("jsonl", "json", "csv", "parquet")


def detect_table_format(path: str | Path) -> str:
    """Guess a table format from the file name (``.gz`` suffix ignored)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix, fmt in (
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "json"),
        (".csv", "csv"),
        (".tsv", "csv"),
        (".parquet", "parquet"),
        (".pq", "parquet"),
    ):
        if name.endswith(suffix):
            return fmt
    raise DataFormatError(
        f"{path}: cannot tell the format from the file name; name it "
        f"(one of {', '.join(TABLE_FORMATS)})"
    )


def read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped when they are gzip; a missing, unreadable
    or corrupt file is a :class:`DataFormatError` naming it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read file ({exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(f"{path}: corrupt gzip data ({exc})") from None
    return raw


def read_table(path: str | Path, format: str | None = None) -> pl.DataFrame:
    """Read a JSONL / JSON / CSV / Parquet file (optionally gzipped).

    Parameters
    ----------
    path
        The file to read.
    format
        One of :data:`TABLE_FORMATS`; detected from the file name when None.
        A ``.json`` file may hold one array of records or one record a line.

    Returns
    -------
    polars.DataFrame
        With the schema inferred from every row of the file.
    """
    path = Path(path)
    fmt = format or detect_table_format(path)
    if fmt not in TABLE_FORMATS:
        raise DataFormatError(f"unknown format {fmt!r}; expected {TABLE_FORMATS}")
    if fmt == "parquet":
        try:
            return pl.read_parquet(path)
        except FileNotFoundError:
            raise DataFormatError(f"{path}: no such file") from None
        except Exception as exc:  # polars raises several unrelated types
            raise DataFormatError(f"{path}: not a readable Parquet file ({exc})") from None
    raw = read_bytes(path)
    try:
        if fmt == "csv":
            sep = "\t" if ".tsv" in path.name.lower() else ","
            return pl.read_csv(io.BytesIO(raw), infer_schema_length=None, separator=sep)
        if fmt == "json" and raw.lstrip()[:1] == b"[":
            return pl.read_json(io.BytesIO(raw), infer_schema_length=None)
        return pl.read_ndjson(io.BytesIO(raw), infer_schema_length=None)
    except Exception as exc:  # polars raises ComputeError, SchemaError, ...
        raise DataFormatError(f"{path}: not readable as {fmt} ({exc})") from None
