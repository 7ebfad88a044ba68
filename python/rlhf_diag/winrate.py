"""AlpacaEval win rates and the length-controlled win rate.

Every AlpacaEval annotation compares a baseline's output (``output_1``) with a
model's (``output_2``) on one instruction; ``preference`` in [1, 2] is the
judge's probability-weighted verdict (2: the model's output wins, 1.5 or the
old code 0: a draw, null: a failed annotation). Per model this module reports

* the weighted win rate ``100 mean(preference - 1)`` with its standard error
  ``100 sd / sqrt(n)`` (``ddof = 1``), over the non-null annotations;
* the discrete win rate: a preference above 1.5 is a win, exactly 1.5 a
  draw worth one half, below 1.5 a loss; wins, baseline wins, draws, totals;
* the mean length of the model's outputs (characters);
* the **length-controlled win rate** (LC) of Dubois et al. (2024).

The length-controlled GLM
-------------------------
For model ``m`` and instruction ``i`` with target ``y = preference - 1``::

    logit P(m beats baseline on i) = a_m tanh(s_i) + b_m g_i + c_m

where ``s_i = (len_baseline_i - len_model_i) / sd_m`` is the length
difference standardised by its standard deviation over the model's rows (not
centred), ``g_i`` is the instruction's difficulty and ``c_m`` the model's
term. LC is the model's predicted preference with the length difference set
to zero, averaged over its instructions: ``100 mean_i sigmoid(c_m + b_m g_i)``.
Column names and signs follow AlpacaEval's, so fitted coefficients compare
with its published weights file directly.

Two ingredients of AlpacaEval's fit are not public as files, and are
rebuilt here:

1. *Instruction difficulty.* Estimated jointly across the models given, by
   the two-way logistic model ``logit P = theta_m + phi_m tanh(s_i) + g_i``
   (a term and a length slope per model, one effect per instruction), fitted
   by Newton's method with a Schur complement over the per-model block, and
   a ridge ``difficulty_l2`` on ``g`` alone (it removes the one
   non-identified direction, a shift of every ``g`` against every
   ``theta``). This follows the joint fit of AlpacaEval's
   ``instruction_difficulty`` notebook; it needs many models (a few dozen)
   to be stable; a table can be passed instead.
2. *The gamed-baseline anchor.* AlpacaEval adds to every model's fit the
   annotations of the baseline prompted to be verbose and to be concise,
   with the model term switched off and weight ``0.2 / 2`` per row; since
   those outputs differ from the baseline only in length, they pin the
   length slope. Here the anchor is two synthetic sets of pseudo-rows, one
   per instruction each, with standardised length difference ``-1`` and
   ``+1``, the model term off, weight ``anchor_weight / 2`` and soft targets
   ``sigmoid(anchor_slope tanh(s) + g_i)``. ``anchor_slope = -1.613`` is
   the mean of the published slopes of ``gpt4_1106_preview_verbose``
   (-1.5835) and ``gpt4_1106_preview_concise`` (-1.6425).

The per-model fits run in the Rust logistic engine (Newton, soft targets,
weights); AlpacaEval's own fit uses an L1 penalty chosen by 5-fold
cross-validation, whose chosen strength barely binds at 805 rows and three
coefficients, so these fits are unpenalised.

``alignment="position"`` reproduces a quirk of the published numbers: the
k-th annotation of a file takes the difficulty of the k-th instruction, so a
file with missing rows shifts every later difficulty. The default,
``"instruction"``, matches difficulties by instruction text.

References
----------
- Dubois, Galambosi, Liang & Hashimoto (2024). Length-Controlled AlpacaEval:
  A Simple Way to Debias Automatic Evaluators. arXiv:2404.04475.
- Li, Zhang, Dubois et al. (2023). AlpacaEval: An Automatic Evaluator of
  Instruction-following Models. github.com/tatsu-lab/alpaca_eval.
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from rlhf_diag.exceptions import (
    DataFormatError,
    DataQualityWarning,
    InputError,
)
from rlhf_diag.io import read_bytes
from rlhf_diag.logistic import fit_logistic_groups, fit_two_way

__all__ = [
    "ANCHOR_SLOPE",
    "ModelWinRate",
    "WinRateResult",
    "estimate_difficulty",
    "read_annotations",
    "win_rates",
]

log = logging.getLogger("rlhf_diag")

#: Mean published tanh slope of AlpacaEval's two gamed baselines.
ANCHOR_SLOPE = -1.613
#: AlpacaEval's ``regularize_to_baseline_lambda``: total weight of the anchor.
ANCHOR_WEIGHT = 0.2
#: Standardised length difference of the two synthetic anchor sets.
ANCHOR_SHIFT = 1.0
_SCHEMA = {
    "instruction": pl.String,
    "output_1": pl.String,
    "output_2": pl.String,
    "generator_1": pl.String,
    "generator_2": pl.String,
    "preference": pl.Float64,
}
_ALIGNMENTS = ("instruction", "position")


# --------------------------------------------------------------------------
# Reading


def _annotation_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.exists():
        raise DataFormatError(f"{path}: no such file or folder")
    found = sorted(
        p
        for p in path.rglob("annotations.json*")
        if p.name in ("annotations.json", "annotations.json.gz")
    )
    if not found:
        raise DataFormatError(f"{path}: no annotations.json(.gz) file under it")
    return found


def _read_records(path: Path) -> pl.DataFrame:
    raw = read_bytes(path)
    try:
        if raw.lstrip()[:1] == b"[":
            return pl.read_json(io.BytesIO(raw), schema=_SCHEMA)
        return pl.read_ndjson(io.BytesIO(raw), schema=_SCHEMA)
    except Exception as exc:  # noqa: BLE001 (polars raises unrelated types)
        raise DataFormatError(
            f"{path}: not readable as AlpacaEval annotations ({exc})"
        ) from None


def _file_frame(path: Path) -> pl.DataFrame:
    df = _read_records(path)
    if df.height == 0:
        raise DataFormatError(f"{path}: no annotations")
    for col in ("instruction", "output_1", "output_2", "generator_1"):
        if df[col].null_count() == df.height:
            raise DataFormatError(f"{path}: no {col!r} field in any record")
    gens = df["generator_2"].unique().to_list()
    # One generator in a file named annotations.json*: the folder names the
    # model (AlpacaEval's results/<model>/... layout), as on its leaderboard.
    if len(gens) == 1 and path.name.startswith("annotations.json"):
        model = pl.lit(path.parent.name or str(gens[0]))
    else:
        model = pl.col("generator_2").fill_null(path.stem)
    return df.with_columns(model.alias("model")).select(
        pl.col("model"),
        pl.col("generator_1"),
        pl.col("generator_2"),
        pl.col("instruction"),
        pl.int_range(pl.len(), dtype=pl.Int64).over("model").alias("position"),
        pl.col("output_1").str.len_chars().cast(pl.Int64).alias("len_1"),
        pl.col("output_2").str.len_chars().cast(pl.Int64).alias("len_2"),
        pl.col("preference"),
        pl.lit(str(path)).alias("source"),
    )


def read_annotations(paths) -> pl.DataFrame:
    """Read AlpacaEval annotation files into one normalised frame.

    Parameters
    ----------
    paths : path or sequence of paths
        ``annotations.json`` / ``annotations.json.gz`` files (a JSON array
        of records or JSON lines), or folders searched recursively for them
        (AlpacaEval's ``results/<model>/annotations.json.gz`` layout).

    Returns
    -------
    polars.DataFrame
        One row per annotation: ``model``, ``generator_1`` (the baseline),
        ``generator_2``, ``instruction``, ``position`` (row number within the
        model's file), ``len_1`` / ``len_2`` (output lengths in characters,
        null when the output is missing), ``preference`` and ``source``.
        A file with a single generator takes its folder's name as the model
        name (AlpacaEval's layout; ``NullModel``'s records say ``example``).

    Raises
    ------
    DataFormatError
        A missing or unreadable file, or one without the AlpacaEval fields.
    InputError
        The same model name in two files.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = [f for p in paths for f in _annotation_files(Path(p))]
    if not files:
        raise InputError("no annotation files given")
    frames = [_file_frame(f) for f in files]
    seen: dict[str, str] = {}
    for f, fr in zip(files, frames):
        for m in fr["model"].unique().to_list():
            if m in seen:
                raise InputError(f"model {m!r} appears in both {seen[m]} and {f}")
            seen[m] = str(f)
    log.info("read %d annotation files, %d models", len(files), len(seen))
    return pl.concat(frames)


# --------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class ModelWinRate:
    """One model's win rates against the baseline (percentages 0-100).

    ``length_controlled_winrate`` is None when ``length_controlled`` was
    off, with the reason in ``lc_reason``. ``glm_coef`` holds the fitted
    ``(tanh slope, difficulty slope, model term)`` in AlpacaEval's order.
    """

    model: str
    win_rate: float
    standard_error: float | None
    n_wins: int
    n_wins_base: int
    n_draws: int
    n_total: int
    n_null: int
    discrete_win_rate: float
    avg_length: float
    length_controlled_winrate: float | None = None
    lc_standard_error: float | None = None
    lc_delta_se: float | None = None
    glm_coef: tuple[float, float, float] | None = None
    lc_reason: str | None = None

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["glm_coef"] = None if self.glm_coef is None else list(self.glm_coef)
        return d


@dataclass(frozen=True)
class WinRateResult:
    """Win rates of several models against one baseline.

    Attributes
    ----------
    baseline : str
    models : dict of str to ModelWinRate
        In the order the models were read.
    difficulty : dict of str or int to float, or None
        The instruction difficulty used (keys: instruction text, or row
        positions when ``alignment == "position"``).
    options : dict
        The settings of the length-controlled fit.
    notes : tuple of str
        Decisions taken while computing (dropped rows, degenerate lengths).
    """

    baseline: str
    models: dict
    difficulty: dict | None
    options: dict
    notes: tuple = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """JSON-ready dict: ``{"baseline", "options", "notes", "models":
        {model: {win_rate, standard_error, n_wins, n_draws, n_total,
        discrete_win_rate, avg_length, length_controlled_winrate, ...}}}``."""
        return {
            "baseline": self.baseline,
            "options": dict(self.options),
            "notes": list(self.notes),
            "models": {m: r.to_dict() for m, r in self.models.items()},
        }

    def to_polars(self) -> pl.DataFrame:
        """One row per model, sorted by LC (else win rate), best first."""
        rows = [r.to_dict() for r in self.models.values()]
        for r in rows:
            r.pop("glm_coef")
        df = pl.DataFrame(rows, infer_schema_length=None)
        key = (
            "length_controlled_winrate"
            if df["length_controlled_winrate"].null_count() < df.height
            else "win_rate"
        )
        return df.sort(key, descending=True, nulls_last=True)

    def summary(self) -> str:
        """A plain-text table, best model first."""
        lines = [f"AlpacaEval win rates against {self.baseline}", ""]
        head = f"{'model':<36}{'LC':>7}{'win':>7}{'se':>6}{'disc':>7}"
        lines.append(head + f"{'wins':>6}{'draws':>6}{'n':>5}{'len':>7}")
        for r in self.to_polars().iter_rows(named=True):
            lc = r["length_controlled_winrate"]
            lc_s = "—" if lc is None else f"{lc:.1f}"
            se = "—" if r["standard_error"] is None else f"{r['standard_error']:.1f}"
            lines.append(
                f"{r['model'][:35]:<36}{lc_s:>7}{r['win_rate']:>7.1f}{se:>6}"
                f"{r['discrete_win_rate']:>7.1f}{r['n_wins']:>6}{r['n_draws']:>6}"
                f"{r['n_total']:>5}{r['avg_length']:>7.0f}"
            )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The report page (raw vs length-controlled plot and table) as a
        notebook fragment."""
        from rlhf_diag.report import build_page

        return build_page(self).fragment()


# --------------------------------------------------------------------------
# Raw win rates


def _check_preferences(df: pl.DataFrame) -> None:
    bad = df.filter(
        pl.col("preference").is_not_null()
        & ~((pl.col("preference") == 0) | pl.col("preference").is_between(1.0, 2.0))
    )
    if bad.height:
        r = bad.row(0, named=True)
        raise InputError(
            f"model {r['model']!r}, row {r['position']}: preference = "
            f"{r['preference']}; expected a value in [1, 2] (or 0 for a draw) "
            f"({bad.height} such rows)"
        )


def _raw_rates(df: pl.DataFrame) -> pl.DataFrame:
    q = pl.col("q")
    return (
        df.with_columns(
            q=pl.when(pl.col("preference") == 0)
            .then(0.5)
            .otherwise(pl.col("preference") - 1.0)
        )
        .group_by("model", maintain_order=True)
        .agg(
            n_null=q.null_count(),
            n_total=q.count(),
            win=q.mean(),
            sd=q.std(ddof=1),
            n_wins=(q > 0.5).sum(),
            n_wins_base=(q < 0.5).sum(),
            n_draws=(q == 0.5).sum(),
            avg_length=pl.col("len_2").mean(),
        )
    )


# --------------------------------------------------------------------------
# Instruction difficulty: the two-way logistic model (Rust core)


def _standardised(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``s``: (len_1 - len_2) / its per-model sd (ddof 1, not centred);
    0 where the sd is 0 or undefined (no length difference to control)."""
    delta = (pl.col("len_1") - pl.col("len_2")).cast(pl.Float64)
    sd = delta.std(ddof=1).over("model")
    return df.with_columns(
        s=pl.when(sd > 0).then(delta / sd).otherwise(0.0).fill_null(0.0)
    )


def estimate_difficulty(
    annotations: pl.DataFrame, *, alignment: str = "instruction", l2: float = 0.1
) -> dict:
    """Instruction difficulty estimated jointly across the models given.

    Fits ``logit P(model beats baseline) = theta_m + phi_m tanh(s) + g_i``
    to every non-null annotation (soft targets ``preference - 1``) by
    Newton's method, with a ridge ``l2`` on the instruction effects ``g``.

    Parameters
    ----------
    annotations : polars.DataFrame
        As returned by :func:`read_annotations`, baseline-vs-itself rows
        removed.
    alignment : {"instruction", "position"}
        Key the effects by instruction text, or by row position in each
        model's file (AlpacaEval's published numbers).
    l2 : float, default 0.1
        Ridge on ``g``; the per-model terms are unpenalised.

    Returns
    -------
    dict
        Instruction (or position) to difficulty. Larger means the models
        win more often there; AlpacaEval's sign convention.
    """
    key = _key_column(alignment)
    df = _standardised(annotations).filter(pl.col("preference").is_not_null())
    if df.height == 0:
        raise InputError("instruction difficulty: no annotations with a preference")
    models = df["model"].unique(maintain_order=True).to_list()
    items = df[key].unique(maintain_order=True).to_list()
    k = df["model"].replace_strict(models, list(range(len(models)))).to_numpy()
    item = df[key].replace_strict(items, list(range(len(items)))).to_numpy()
    z = np.column_stack([np.ones(df.height), np.tanh(df["s"].to_numpy())])
    fit = fit_two_way(
        z, k, item, _targets(df), n_groups=len(models), n_items=len(items), l2=l2
    )
    return dict(zip(items, fit.effects.tolist()))


def _key_column(alignment: str) -> str:
    if alignment not in _ALIGNMENTS:
        raise InputError(f"alignment = {alignment!r}; expected one of {_ALIGNMENTS}")
    return "instruction" if alignment == "instruction" else "position"


def _targets(df: pl.DataFrame) -> np.ndarray:
    p = df["preference"].to_numpy()
    return np.where(p == 0, 0.5, p - 1.0)


# --------------------------------------------------------------------------
# The length-controlled GLM, one model at a time, in the Rust engine


def _anchor_rows(g_all: np.ndarray, slope: float, weight: float):
    """The synthetic gamed-baseline rows: per instruction, one at each
    standardised length difference -1 and +1, model term off."""
    n = len(g_all)
    rows, ys = [], []
    for shift in (-ANCHOR_SHIFT, ANCHOR_SHIFT):
        th = math.tanh(shift)
        rows.append(np.column_stack([np.full(n, th), g_all, np.zeros(n)]))
        ys.append(_sigmoid(slope * th + g_all))
    return np.vstack(rows), np.concatenate(ys), np.full(2 * n, weight / 2.0)


def _sigmoid(eta):
    return 0.5 * (1.0 + np.tanh(0.5 * eta))


_GLM_NAMES = ("np.tanh(std_delta_len)", "instruction_difficulty", "model")
#: A ridge too small to move a fit on real data (its pull is 1e-6 against a
#: curvature of hundreds) that keeps a degenerate column (a constant length
#: difference or difficulty) from making the Hessian singular.
_GLM_RIDGE = 1e-6

#: Fewer non-baseline models than this make the jointly estimated instruction
#: difficulty mostly a model's own wins, and a warning says so.
FEW_MODELS = 5


def _known_rows(others: pl.DataFrame, difficulty: dict, key: str, notes, who):
    """Rows whose instruction has a difficulty; a model with none is an error."""
    known = others.with_columns(known=pl.col(key).is_in(list(difficulty)))
    # Null preferences weigh nothing in the fit and are counted as null
    # already; only rows with a preference and no difficulty are news.
    per = known.filter(pl.col("preference").is_not_null()).group_by(
        "model", maintain_order=True
    ).agg(k=pl.col("known").sum(), n=pl.len())
    for m, k, n in per.iter_rows():
        if k == 0:
            raise InputError(
                f"model {m!r}: none of its {n} instructions has a difficulty; "
                "the table given does not overlap its annotations"
            )
        if k < n:
            notes.append(f"{m}: {n - k} rows with a preference but no difficulty "
                         "left out of LC")
            warnings.warn(
                f"{m}: {n - k} rows with a preference have no difficulty and are "
                "left out of its LC",
                DataQualityWarning,
                stacklevel=who,
            )
    return known.filter(pl.col("known")).drop("known")


def _length_controlled(others, difficulty, anchor, key, notes) -> dict:
    """LC of every non-baseline model, one Rust fit per model in parallel."""
    rows = _known_rows(others, difficulty, key, notes, who=4)
    g_rows = rows[key].replace_strict(difficulty, return_dtype=pl.Float64).to_numpy()
    x = np.column_stack([np.tanh(rows["s"].to_numpy()), g_rows, np.ones(rows.height)])
    fit_mask = rows["preference"].is_not_null().to_numpy()
    y = np.zeros(rows.height)
    y[fit_mask] = _targets(rows.filter(pl.col("preference").is_not_null()))
    w = fit_mask.astype(np.float64)
    models = rows["model"].unique(maintain_order=True).to_list()
    codes = rows["model"].replace_strict(models, list(range(len(models)))).to_numpy()
    shared = np.arange(0)
    if anchor is not None:
        xa, ya, wa = anchor
        shared = np.arange(rows.height, rows.height + len(ya))
        x, y, w = np.vstack([x, xa]), np.concatenate([y, ya]), np.concatenate([w, wa])
    groups = [
        np.concatenate([np.flatnonzero((codes == j) & fit_mask), shared])
        for j in range(len(models))
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fits = fit_logistic_groups(
            x,
            y,
            groups,
            weight=w,
            feature_names=_GLM_NAMES,
            tol=1e-10,
            l2=_GLM_RIDGE,
            unpenalized=["model"],
        )
    for c in caught:
        warnings.warn(f"length-controlled GLM: {c.message}", c.category, stacklevel=4)
    out = {}
    for j, (m, fit) in enumerate(zip(models, fits)):
        if fit.coef_ is None:
            out[m] = {"lc_reason": f"the GLM has no finite fit: {fit.refused_reason}"}
            continue
        a, b, c = fit.coef_
        gm = g_rows[codes == j]
        p = _sigmoid(c + b * gm)
        grad = np.array([0.0, np.mean(p * (1 - p) * gm), np.mean(p * (1 - p))])
        out[m] = {
            "length_controlled_winrate": float(p.mean() * 100.0),
            "lc_standard_error": float(p.std(ddof=1) / math.sqrt(len(p)) * 100.0)
            if len(p) > 1
            else None,
            "lc_delta_se": float(np.sqrt(grad @ fit.cov_ @ grad) * 100.0),
            "glm_coef": (float(a), float(b), float(c)),
        }
    return out


# --------------------------------------------------------------------------
# Entry point


def _baseline(df: pl.DataFrame, baseline: str | None) -> str:
    bases = df["generator_1"].drop_nulls().unique().sort().to_list()
    if baseline is not None:
        if bases and bases != [baseline]:
            raise InputError(
                f"baseline {baseline!r} given, but the annotations compare "
                f"against {bases}"
            )
        return baseline
    if len(bases) != 1:
        raise InputError(
            f"the annotations compare against {len(bases)} baselines {bases}; "
            "give files of one baseline"
        )
    return bases[0]


def _usable(df: pl.DataFrame, notes: list) -> pl.DataFrame:
    """Drop rows missing an output; a model left with none is an error."""
    ok = pl.col("len_1").is_not_null() & pl.col("len_2").is_not_null()
    missing = df.filter(~ok).group_by("model", maintain_order=True).len()
    for m, n in missing.iter_rows():
        notes.append(f"{m}: {n} annotations missing an output were dropped")
    kept = df.filter(ok)
    lost = set(df["model"].unique()) - set(kept["model"].unique())
    if lost:
        raise InputError(
            f"model(s) {sorted(lost)} share no instruction with the baseline: "
            "every annotation lacks the baseline's or the model's output"
        )
    return kept


def win_rates(
    annotations,
    *,
    baseline: str | None = None,
    length_controlled: bool = True,
    difficulty: dict | None = None,
    alignment: str = "instruction",
    anchor_slope: float | None = ANCHOR_SLOPE,
    anchor_weight: float = ANCHOR_WEIGHT,
    difficulty_l2: float = 0.1,
) -> WinRateResult:
    """Win rates and length-controlled win rates of models against a baseline.

    Parameters
    ----------
    annotations : polars.DataFrame, path or sequence of paths
        A frame from :func:`read_annotations`, or what it reads.
    baseline : str, optional
        The baseline's name; by default the one ``generator_1`` of the files.
    length_controlled : bool, default True
        Fit the length-controlled GLM.
    difficulty : dict, optional
        Instruction (or position) to difficulty, for example AlpacaEval's
        published table. By default estimated jointly across the models
        given (:func:`estimate_difficulty`), which needs many models.
    alignment : {"instruction", "position"}
        How rows find their difficulty; see the module notes.
    anchor_slope : float or None, default -1.613
        Slope of the gamed-baseline anchor; None fits without an anchor.
    anchor_weight : float, default 0.2
        Total weight per instruction of the anchor's pseudo-rows.
    difficulty_l2 : float, default 0.1
        Ridge of the joint difficulty fit.

    Returns
    -------
    WinRateResult

    Raises
    ------
    InputError
        Preferences outside [1, 2] (and not 0), several baselines, a model
        with no usable annotation, a difficulty table that covers none of a
        model's instructions.

    Warns
    -----
    SeparationWarning, ConvergenceWarning
        From a model's GLM; a separated GLM (a model that lost every
        instruction with certainty, and no anchor) leaves its LC None with
        ``lc_reason``.
    DataQualityWarning
        Rows whose instruction has no difficulty in the table given.

    Notes
    -----
    The baseline compared with itself gets LC = 50 by construction, as in
    AlpacaEval. ``lc_standard_error`` follows AlpacaEval: the standard error
    of the mean of the per-instruction predicted preferences (their spread,
    not the uncertainty of LC); ``lc_delta_se`` is a delta-method standard
    error from the GLM's covariance, treating the difficulties as known.
    """
    df = annotations
    if not isinstance(df, pl.DataFrame):
        df = read_annotations(annotations)
    key = _key_column(alignment)
    _check_preferences(df)
    base = _baseline(df, baseline)
    notes: list[str] = []
    df = _standardised(_usable(df, notes))
    raw = {r["model"]: r for r in _raw_rates(df).iter_rows(named=True)}
    others = df.filter(pl.col("model") != base)
    source = "given" if difficulty is not None else "estimated jointly"
    if length_controlled and difficulty is None and others.height:
        difficulty = estimate_difficulty(others, alignment=alignment, l2=difficulty_l2)
        n_models = others["model"].n_unique()
        if n_models < FEW_MODELS:
            msg = (
                f"instruction difficulty estimated from {n_models} model(s) only: "
                "the difficulty then mostly restates these models' own results and "
                "their LC can move by points against a joint estimate over many "
                f"models; give more models (>= {FEW_MODELS}) or a difficulty table"
            )
            notes.append(msg)
            warnings.warn(msg, DataQualityWarning, stacklevel=2)
    lc = {}
    if length_controlled and others.height:
        anchor = None
        if anchor_slope is not None:
            g_all = np.fromiter(difficulty.values(), dtype=np.float64)
            anchor = _anchor_rows(g_all, float(anchor_slope), float(anchor_weight))
        lc = _length_controlled(others, difficulty, anchor, key, notes)
    if length_controlled and base in raw:
        lc[base] = {
            "length_controlled_winrate": 50.0,
            "lc_standard_error": 0.0,
            "lc_delta_se": 0.0,
            "glm_coef": (0.0, 0.0, 0.0),
        }
    out = {}
    for m, r in raw.items():
        extra = lc.get(m, {"lc_reason": "length control was not asked for"})
        out[m] = _model_result(m, r, extra)
    options = {
        "length_controlled": length_controlled,
        "alignment": alignment,
        "anchor_slope": anchor_slope,
        "anchor_weight": anchor_weight,
        "difficulty_l2": difficulty_l2,
        "difficulty": source if length_controlled else None,
    }
    return WinRateResult(base, out, difficulty, options, tuple(notes))


def _model_result(m, r, extra) -> ModelWinRate:
    n = r["n_total"]
    if n == 0:
        raise InputError(f"model {m!r}: every annotation has a null preference")
    return ModelWinRate(
        model=m,
        win_rate=100.0 * r["win"],
        standard_error=None if n < 2 else 100.0 * r["sd"] / math.sqrt(n),
        n_wins=int(r["n_wins"]),
        n_wins_base=int(r["n_wins_base"]),
        n_draws=int(r["n_draws"]),
        n_total=int(n),
        n_null=int(r["n_null"]),
        discrete_win_rate=(r["n_wins"] + 0.5 * r["n_draws"]) / n * 100.0,
        avg_length=float(r["avg_length"]),
        **extra,
    )


# --------------------------------------------------------------------------
# Difficulty tables and comparison with a published leaderboard


def read_difficulty(path) -> tuple[dict, str]:
    """Read an instruction-difficulty table (CSV, JSON, JSONL, Parquet).

    The value column is ``instruction_difficulty`` (or ``difficulty``); the
    key column is ``instruction`` (text), or ``index`` (row positions, as in
    AlpacaEval's ``instruction_difficulty.csv``).

    Returns
    -------
    (dict, str)
        The table and the alignment it implies (``"instruction"`` or
        ``"position"``).
    """
    from rlhf_diag.io import read_table

    df = read_table(path)
    value = next(
        (c for c in ("instruction_difficulty", "difficulty") if c in df.columns), None
    )
    if value is None:
        raise InputError(
            f"{path}: no 'instruction_difficulty' or 'difficulty' column "
            f"(columns: {df.columns})"
        )
    if "instruction" in df.columns:
        key, alignment = "instruction", "instruction"
    elif "index" in df.columns:
        key, alignment = "index", "position"
    else:
        raise InputError(f"{path}: no 'instruction' or 'index' key column")
    df = df.select(key, value).drop_nulls()
    if df[key].n_unique() != df.height:
        raise InputError(f"{path}: the {key!r} column has duplicates")
    return dict(zip(df[key].to_list(), df[value].cast(pl.Float64).to_list())), alignment


def read_published(published, *, name: str | None = None) -> pl.DataFrame:
    """A published AlpacaEval leaderboard (a path or a DataFrame), checked to
    have the columns :func:`compare_leaderboard` reads."""
    from rlhf_diag.io import read_table

    pub = published if isinstance(published, pl.DataFrame) else read_table(published)
    missing = [c for c in ("win_rate", "n_wins") if c not in pub.columns]
    if missing:
        raise InputError(
            f"{name or published}: no column {', '.join(missing)} (AlpacaEval's "
            "leaderboard CSV expected)"
        )
    return pub


def compare_leaderboard(result: WinRateResult, published, *, name: str | None = None) -> dict:
    """Compare win rates and LC with a published leaderboard table.

    Parameters
    ----------
    result : WinRateResult
    published : polars.DataFrame or path
        AlpacaEval's leaderboard CSV: model names in the first column,
        ``win_rate``, ``n_wins`` and ``length_controlled_winrate``.
    name : str, optional
        What errors call the table (default: its path).

    Returns
    -------
    dict
        ``n_models`` (in both, baseline excluded), ``max_abs_win_rate_diff``,
        ``n_wins_equal``, ``lc_within_1`` / ``lc_within_2`` (shares),
        ``lc_spearman``, ``lc_max_abs_diff`` and per-model ``lc_diff``.
    """
    from scipy.stats import spearmanr

    where = name or (
        "the published table" if isinstance(published, pl.DataFrame) else str(published)
    )
    pub = read_published(published, name=where)
    first = pub.columns[0]
    pubd = {r[first]: r for r in pub.iter_rows(named=True)}
    both = [m for m in result.models if m in pubd and m != result.baseline]
    if not both:
        raise InputError(f"{where}: no model of the result is in it")
    ours = [result.models[m] for m in both]
    out = {
        "n_models": len(both),
        "max_abs_win_rate_diff": max(
            abs(r.win_rate - pubd[m]["win_rate"]) for m, r in zip(both, ours)
        ),
        "n_wins_equal": sum(r.n_wins == pubd[m]["n_wins"] for m, r in zip(both, ours)),
    }
    lc = [
        (m, r.length_controlled_winrate, pubd[m].get("length_controlled_winrate"))
        for m, r in zip(both, ours)
    ]
    lc = [(m, a, b) for m, a, b in lc if a is not None and b is not None]
    if len(lc) >= 2:
        d = np.array([a - b for _, a, b in lc])
        out.update(
            lc_n=len(lc),
            lc_within_1=float(np.mean(np.abs(d) <= 1.0)),
            lc_within_2=float(np.mean(np.abs(d) <= 2.0)),
            lc_spearman=float(spearmanr([a for _, a, _ in lc], [b for *_, b in lc])[0]),
            lc_max_abs_diff=float(np.abs(d).max()),
            lc_diff={m: a - b for m, a, b in lc},
        )
    return out
