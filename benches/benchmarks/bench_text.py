"""The text feature pass against Python's ``re`` and polars expressions.

Input: responses from :func:`rlhf_diag.simulate_text.simulate_preference_texts`
(about 1.1 KB of markdown each, so 1e6 texts are 1.1 GB), with their true
counts; every ``track_`` figure is the number of wrong cells (0 expected).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
from rlhf_diag import simulate_text
from rlhf_diag._reference import polars_features, reference_features
from rlhf_diag.features import FEATURES, text_features

from ._common import Big, cached, reset_peak, sizes, source_key
from ._peers import python_re_frame


def text_path(n_texts: int):
    """Arrow IPC file: ``text`` (large_string) and the 12 true counts."""

    def build(folder):
        sim = simulate_text.simulate_preference_texts(n_texts // 2, seed=7)
        truth = sim.true_features(FEATURES)
        table = pa.table(
            {"text": sim.texts().to_arrow().cast(pa.large_string()), **truth.to_dict()}
        )
        with pa.ipc.new_file(str(folder / "texts.arrow"), table.schema) as writer:
            writer.write_table(table)

    return cached(f"text-{n_texts}", source_key(simulate_text), build) / "texts.arrow"


def read_table(n_texts: int) -> pa.Table:
    """The whole file read into memory (no memory map, so peak memory counts
    the input once)."""
    with pa.OSFile(str(text_path(n_texts))) as f:
        return pa.ipc.open_file(f).read_all()


def truth_of(table: pa.Table) -> np.ndarray:
    return np.column_stack([table.column(n).to_numpy() for n in FEATURES])


def wrong_cells(counts: np.ndarray, truth: np.ndarray) -> int:
    return int((np.asarray(counts, dtype=np.int64) != truth).sum())


class TextFeatures(Big):
    """rlhf_diag: one Rust pass, reading the Arrow buffers in place."""

    params = [sizes([10_000], [1_000, 100_000, 1_000_000])]
    param_names = ["n_texts"]
    smoke = (1_000,)

    def setup(self, n_texts):
        table = read_table(n_texts)
        self.texts = table.column("text").combine_chunks()
        self.truth = truth_of(table)
        reset_peak()

    def time_ours(self, n_texts):
        text_features(self.texts)

    def peakmem_ours(self, n_texts):
        text_features(self.texts)

    def track_ours_wrong_cells(self, n_texts):
        return wrong_cells(text_features(self.texts).to_numpy(), self.truth)

    track_ours_wrong_cells.unit = "cells"

    def track_megabytes(self, n_texts):
        return self.texts.nbytes / 1e6

    track_megabytes.unit = "MB"


class TextPolars(Big):
    """Peer: polars expressions (``rlhf_diag._reference.polars_features``)."""

    params = [sizes([10_000], [100_000, 1_000_000])]
    param_names = ["n_texts"]
    smoke = (1_000,)

    def setup(self, n_texts):
        table = read_table(n_texts)
        self.texts = pl.from_arrow(table.column("text"))
        self.truth = truth_of(table)
        del table
        reset_peak()

    def time_polars(self, n_texts):
        polars_features(self.texts)

    def peakmem_polars(self, n_texts):
        polars_features(self.texts)

    def track_polars_wrong_cells(self, n_texts):
        return wrong_cells(polars_features(self.texts).to_numpy(), self.truth)

    track_polars_wrong_cells.unit = "cells"


class TextPythonRe(Big):
    """Peer: Python ``re``, one string at a time, with cheap skips."""

    params = [sizes([1_000], [10_000, 100_000])]
    param_names = ["n_texts"]
    smoke = (200,)

    def setup(self, n_texts):
        table = read_table(n_texts)
        self.texts = table.column("text").to_pylist()
        self.truth = truth_of(table)

    def time_python_re(self, n_texts):
        python_re_frame(self.texts)

    def track_python_re_wrong_cells(self, n_texts):
        return wrong_cells(python_re_frame(self.texts), self.truth)

    track_python_re_wrong_cells.unit = "cells"


class TextReference(Big):
    """Peer: the package's readable oracle, ``reference_features`` (one
    regular expression per rule, per line, and a per-character emoji test)."""

    params = [[1_000]]
    param_names = ["n_texts"]
    smoke = (50,)

    def setup(self, n_texts):
        self.texts = read_table(n_texts).column("text").to_pylist()

    def time_reference(self, n_texts):
        [reference_features(t) for t in self.texts]
