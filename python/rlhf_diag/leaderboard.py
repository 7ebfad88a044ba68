"""Arena leaderboards: item-level Bradley-Terry from pairwise battles.

Battles ``(model_a, model_b, winner)`` are normalised here, collapsed to
per-pair counts in the Rust core, fitted by Newton to a gradient tolerance
(ties ``half``, ``drop``, ``davidson`` or ``rao-kupper``), checked for a
disconnected comparison graph and for models with no finite estimate, and
given Hessian standard errors and, on request, count-space bootstrap
intervals. See ``docs/leaderboard.md`` for the method and its references.

References
----------
Bradley & Terry (1952), Biometrika 39. Davidson (1970), JASA 65. Rao &
Kupper (1967), JASA 62. Ford (1957), Amer. Math. Monthly 64. Chiang et al.
(2024), "Chatbot Arena", ICML.
"""

from __future__ import annotations

import html
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import norm

from rlhf_diag import _core
from rlhf_diag.exceptions import (
    ConvergenceWarning,
    DataQualityWarning,
    FitError,
    InputError,
    SeparationWarning,
    UndefinedStatisticError,
)
from rlhf_diag.io import read_table

log = logging.getLogger("rlhf_diag")

__all__ = [
    "ELO_FACTOR",
    "BattleArrays",
    "Leaderboard",
    "fit_battle_arrays",
    "fit_leaderboard",
    "fit_style_controlled",
    "normalise_battles",
    "style_covariates",
]

#: Elo points per unit of natural log-strength, ``400 / ln 10``.
ELO_FACTOR = 400.0 / math.log(10.0)
#: Rating of the mean model on the Elo scale when centring.
ELO_BASE = 1000.0

A_WINS, B_WINS, TIE = 0, 1, 2
_CANONICAL = {"model_a": A_WINS, "model_b": B_WINS, "tie": TIE}
# Built-in winner labels after removing white space and lower-casing.
_LABELS = {
    "model_a": A_WINS,
    "a": A_WINS,
    "left": A_WINS,
    "model_b": B_WINS,
    "b": B_WINS,
    "right": B_WINS,
    "tie": TIE,
    "draw": TIE,
    "tie(bothbad)": TIE,
}
# Column pairs tried, in order, when the default side columns are missing.
_SIDE_COLUMNS = [("model_a", "model_b"), ("left", "right")]
_TIES = ("half", "drop", "davidson", "rao-kupper")
_STANDING = {0: "ok", 1: "+inf", 2: "-inf", 3: "undefined"}
_MAX_ROWS_SHOWN = 5


def _norm_label(value: str) -> str:
    return "".join(value.split()).lower()


@dataclass(frozen=True)
class BattleArrays:
    """Battles as arrays ready for the core.

    Attributes
    ----------
    models
        Model names; ``a`` and ``b`` index into it.
    a, b
        ``uint32`` model indices of the two sides.
    outcome
        ``uint8``: 0 side a wins, 1 side b wins, 2 tie (``tie (bothbad)``
        included).
    weight
        Optional ``float64`` battle weights.
    n_self_battles
        Rows dropped because both sides were the same model.
    self_battle_rows
        The first of those rows (0-based row numbers of the input).
    """

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    weight: np.ndarray | None = None
    n_self_battles: int = 0
    self_battle_rows: list[int] = field(default_factory=list)


def _rows_of(mask: pl.Series) -> list[int]:
    return mask.arg_true().head(_MAX_ROWS_SHOWN).to_list()


def _pick_side_columns(frame: pl.DataFrame, model_a: str, model_b: str):
    if model_a in frame.columns and model_b in frame.columns:
        return model_a, model_b
    if (model_a, model_b) == _SIDE_COLUMNS[0]:
        for a, b in _SIDE_COLUMNS[1:]:
            if a in frame.columns and b in frame.columns:
                log.info("using columns %r and %r as the two sides", a, b)
                return a, b
    missing = [c for c in (model_a, model_b) if c not in frame.columns]
    raise InputError(
        f"missing column(s) {missing}; the data have {frame.columns} "
        "(name the sides with model_a= / model_b=)"
    )


def _label_map(labels: dict[str, str] | None) -> dict[str, int]:
    table = dict(_LABELS)
    for raw, meaning in (labels or {}).items():
        key = _norm_label(str(meaning))
        if key not in _CANONICAL:
            raise InputError(
                f"winner label {raw!r} mapped to {meaning!r}; "
                "expected model_a, model_b or tie"
            )
        table[_norm_label(str(raw))] = _CANONICAL[key]
    return table


def _outcomes(column: pl.Series, labels: dict[str, str] | None) -> np.ndarray:
    table = _label_map(labels)
    keys = column.cast(pl.Utf8).str.replace_all(r"\s+", "").str.to_lowercase()
    codes = keys.replace_strict(
        list(table), list(table.values()), default=None, return_dtype=pl.UInt8
    )
    bad = codes.is_null()
    if bad.any():
        raw = column.cast(pl.Utf8).fill_null("<missing>")
        parts = []
        for value in raw.filter(bad).unique(maintain_order=True).head(10):
            rows = _rows_of(raw == value if value != "<missing>" else column.is_null())
            parts.append(f"{value!r} (rows {rows})")
        raise InputError(
            f"unknown winner label(s) in column {column.name!r}: "
            + "; ".join(parts)
            + "; expected model_a, model_b, tie or tie (bothbad)"
            " (map others with labels=)"
        )
    return codes.to_numpy().astype(np.uint8)


def _weights(frame: pl.DataFrame, weight: str | None) -> np.ndarray | None:
    if weight is None:
        return None
    if weight not in frame.columns:
        raise InputError(
            f"missing weight column {weight!r}; the data have {frame.columns}"
        )
    try:
        w = frame[weight].cast(pl.Float64)
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"weight column {weight!r} is not numeric ({exc})") from None
    bad = w.is_null() | w.is_nan() | w.is_infinite() | (w < 0)
    if bad.any():
        raise InputError(
            f"weight column {weight!r}: missing, negative or non-finite values at "
            f"rows {_rows_of(bad)}"
        )
    return w.to_numpy().astype(np.float64)


def normalise_battles(
    frame: pl.DataFrame,
    *,
    model_a: str = "model_a",
    model_b: str = "model_b",
    winner: str = "winner",
    weight: str | None = None,
    labels: dict[str, str] | None = None,
) -> BattleArrays:
    """Turn a battle table into arrays for the core.

    Parameters
    ----------
    frame
        One row per battle.
    model_a, model_b
        Columns naming the two sides. When the defaults are missing and the
        table has ``left`` / ``right`` columns, those are used.
    winner
        Column of outcome labels, matched without regard to case or white
        space: ``model_a`` (also ``a``, ``left``), ``model_b`` (also ``b``,
        ``right``), ``tie``, ``draw``, ``tie (bothbad)``.
    weight
        Optional column of non-negative battle weights.
    labels
        Extra labels, each mapped to ``"model_a"``, ``"model_b"`` or
        ``"tie"``.

    Returns
    -------
    BattleArrays
        Self-battles (both sides the same model) are dropped and counted.

    Raises
    ------
    InputError
        For a missing column, a missing model name, an unknown label (listing
        the values and their rows) or a bad weight.
    """
    col_a, col_b = _pick_side_columns(frame, model_a, model_b)
    if winner not in frame.columns:
        raise InputError(
            f"missing winner column {winner!r}; the data have {frame.columns}"
        )
    side_a = frame[col_a].cast(pl.Utf8)
    side_b = frame[col_b].cast(pl.Utf8)
    for name, side in ((col_a, side_a), (col_b, side_b)):
        if side.is_null().any():
            raise InputError(
                f"column {name!r}: missing model name at rows "
                f"{_rows_of(side.is_null())}"
            )
    outcome = _outcomes(frame[winner], labels)
    w = _weights(frame, weight)
    same = side_a == side_b
    n_self = int(same.sum())
    self_rows = _rows_of(same)
    if n_self:
        keep = (~same).to_numpy()
        side_a, side_b, outcome = (
            side_a.filter(~same),
            side_b.filter(~same),
            outcome[keep],
        )
        w = None if w is None else w[keep]
    models = pl.concat([side_a, side_b]).unique().sort().to_list()
    index = {m: i for i, m in enumerate(models)}
    a = side_a.replace_strict(index, return_dtype=pl.UInt32).to_numpy()
    b = side_b.replace_strict(index, return_dtype=pl.UInt32).to_numpy()
    return BattleArrays(models, a, b, outcome, w, n_self, self_rows)


def _scale_params(scale: str, anchor: tuple[str, float] | None) -> tuple[float, float]:
    if scale not in ("elo", "log"):
        raise InputError(f"scale = {scale!r}: expected 'elo' or 'log'")
    factor = ELO_FACTOR if scale == "elo" else 1.0
    if anchor is not None:
        return factor, float(anchor[1])
    return factor, ELO_BASE if scale == "elo" else 0.0


def _none_if_not_finite(x: float) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


@dataclass(frozen=True)
class Leaderboard:
    """A fitted leaderboard.

    Attributes
    ----------
    models
        Model names, in input order (sorted names when read from a table).
    rows
        One dict per model, sorted by rank: ``model``, ``theta`` (natural
        log-strength), ``rating`` (on ``scale``), ``se``, ``ci_low``,
        ``ci_high`` (on ``scale``), ``rank``, ``rank_ub``, ``n_battles``,
        ``wins``, ``losses``, ``ties``, ``win_rate``, ``component``,
        ``status`` and ``n_degenerate`` (bootstrap rounds with no finite
        estimate). A value that cannot be computed is ``None`` and
        ``status`` says why.
    constraint
        How the free shift was fixed: ``"mean zero"`` (over the finite
        models of each component) or ``"anchor MODEL = RATING"``.
    ties, scale, alpha
        The options fitted with.
    tie_param, tie_param_se, tie_param_ci
        Davidson ``nu`` or Rao-Kupper ``kappa`` (None for half / drop).
    interval
        ``"bootstrap percentile"`` or ``"Wald (Hessian)"``.
    iterations, grad_norm, converged
        Newton's report: steps taken, final ``‖∇‖∞`` of the penalised
        negative log-likelihood, and whether the tolerance was reached.
    warnings
        Every warning raised by the fit, as text.
    cov_
        Covariance of θ under the constraint (K×K, natural scale; zero for
        models with no finite estimate and across components).
    bootstrap_draws_, bootstrap_defined_
        Bootstrap θ per round and model (``±inf`` where the model had no
        finite estimate but an order), and where each draw is defined.
    style
        Style control only (:func:`fit_style_controlled`): one dict per
        style covariate, ``feature``, ``coef``, ``se``, ``ci_low``,
        ``ci_high`` (log-odds per unit of the covariate); None otherwise.
    """

    models: list[str]
    rows: list[dict[str, Any]]
    constraint: str
    ties: str
    scale: str
    alpha: float
    tie_param: float | None
    tie_param_se: float | None
    tie_param_ci: tuple[float, float] | None
    interval: str
    level: float
    iterations: int
    grad_norm: float
    converged: bool
    warnings: list[str]
    n_battles: int
    bootstrap_rounds: int
    seed: int | None
    theta_: np.ndarray = field(repr=False)
    standing_: np.ndarray = field(repr=False)
    component_: np.ndarray = field(repr=False)
    cov_: np.ndarray | None = field(repr=False, default=None)
    bootstrap_draws_: np.ndarray | None = field(repr=False, default=None)
    bootstrap_defined_: np.ndarray | None = field(repr=False, default=None)
    style: list[dict[str, Any]] | None = None

    # ----------------------------------------------------------- queries
    def _index(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise InputError(f"unknown model {model!r}") from None

    @property
    def _factor(self) -> float:
        return ELO_FACTOR if self.scale == "elo" else 1.0

    def difference(self, model_1: str, model_2: str) -> dict[str, float]:
        """Rating difference ``model_1 - model_2`` with its Hessian standard
        error, on the leaderboard's scale.

        Raises
        ------
        UndefinedStatisticError
            When the two models lie in different components, or either has no
            finite estimate: such a difference is not a number.
        """
        i, j = self._index(model_1), self._index(model_2)
        if self.component_[i] != self.component_[j]:
            raise UndefinedStatisticError(
                f"{model_1!r} and {model_2!r} were never compared, even "
                "indirectly (different components): their difference is undefined"
            )
        for m, k in ((model_1, i), (model_2, j)):
            if self.standing_[k] != 0:
                raise UndefinedStatisticError(
                    f"{model_1!r} - {model_2!r}: {m!r} has no finite estimate "
                    f"({_STANDING[int(self.standing_[k])]})"
                )
        out = {"difference": float(self._factor * (self.theta_[i] - self.theta_[j]))}
        if self.cov_ is not None:
            c = self.cov_
            var = c[i, i] + c[j, j] - 2.0 * c[i, j]
            out["se"] = float(self._factor * math.sqrt(max(var, 0.0)))
        return out

    def win_rate_matrix(self) -> pl.DataFrame:
        """Predicted expected score of each row model against each column
        model: ``P(win) + P(tie) / 2`` under the fitted tie model.

        Entries are null across components and for models with no order
        against the others; a model at ``±inf`` scores 1 or 0.
        """
        th = self.theta_.astype(float).copy()
        th[self.standing_ == 1] = np.inf
        th[self.standing_ == 2] = -np.inf
        ok = self.standing_ != 3
        d = th[:, None] - th[None, :]
        with np.errstate(invalid="ignore", over="ignore"):
            p = _expected_score(d, self.ties, self.tie_param)
        same = self.component_[:, None] == self.component_[None, :]
        valid = same & ok[:, None] & ok[None, :] & np.isfinite(p)
        np.fill_diagonal(valid, False)
        cols = {"model": self.models}
        for j, m in enumerate(self.models):
            cols[m] = [
                float(p[i, j]) if valid[i, j] else None for i in range(len(self.models))
            ]
        return pl.DataFrame(cols, schema_overrides={m: pl.Float64 for m in self.models})

    # ------------------------------------------------------------ views
    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "models": [dict(r) for r in self.rows],
            "constraint": self.constraint,
            "ties": self.ties,
            "scale": self.scale,
            "alpha": self.alpha,
            "tie_param": self.tie_param,
            "tie_param_se": self.tie_param_se,
            "tie_param_ci": list(self.tie_param_ci) if self.tie_param_ci else None,
            "interval": self.interval,
            "level": self.level,
            "iterations": self.iterations,
            "grad_norm": self.grad_norm,
            "converged": self.converged,
            "n_battles": self.n_battles,
            "bootstrap_rounds": self.bootstrap_rounds,
            "seed": self.seed,
            "warnings": list(self.warnings),
            **(
                {"style": [dict(x) for x in self.style]}
                if self.style is not None
                else {}
            ),
        }

    def to_polars(self) -> pl.DataFrame:
        """One row per model, sorted by rank."""
        schema = {
            "model": pl.Utf8,
            "theta": pl.Float64,
            "rating": pl.Float64,
            "se": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
            "rank": pl.Int64,
            "rank_ub": pl.Int64,
            "n_battles": pl.Int64,
            "wins": pl.Float64,
            "losses": pl.Float64,
            "ties": pl.Float64,
            "win_rate": pl.Float64,
            "component": pl.Int64,
            "status": pl.Utf8,
            "n_degenerate": pl.Int64,
        }
        return pl.DataFrame(self.rows, schema=schema)

    def _header(self) -> str:
        tie = ""
        if self.tie_param is not None:
            name = "nu" if self.ties == "davidson" else "kappa"
            se = (
                f" (se {self.tie_param_se:.4g})"
                if self.tie_param_se is not None
                else ""
            )
            tie = f", {name} = {self.tie_param:.4g}{se}"
        return (
            f"Bradley-Terry leaderboard: {len(self.models)} models, "
            f"{self.n_battles} battles, ties = {self.ties}{tie}; {self.constraint}; "
            f"{self.interval} {self.level:.0%} intervals; Newton {self.iterations} "
            f"iterations, |grad| = {self.grad_norm:.2e}"
        )

    def summary(self) -> str:
        """The leaderboard as plain text."""
        lines = [self._header(), ""]
        lines.append(
            f"{'rank':>4} {'ub':>4}  {'model':<40} {'rating':>9} {'interval':>21} "
            f"{'battles':>8} {'win%':>6}"
        )
        for r in self.rows:
            lines.append(
                f"{_fmt_int(r['rank']):>4} {_fmt_int(r['rank_ub']):>4}  "
                f"{r['model'][:40]:<40} {_fmt(r['rating'], r['status']):>9} "
                f"{_fmt_ci(r):>21} {r['n_battles']:>8} "
                f"{_fmt_pct(r['win_rate']):>6}"
            )
        for x in self.style or []:
            lines.append(
                f"style {x['feature']}: {_fmt(x['coef'])} (se {_fmt(x['se'])}, "
                f"{self.level:.0%} interval "
                f"[{_fmt(x['ci_low'])}, {_fmt(x['ci_high'])}])"
            )
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        head = "".join(
            f"<th>{h}</th>"
            for h in (
                "rank",
                "rank ub",
                "model",
                "rating",
                "interval",
                "battles",
                "win rate",
            )
        )
        body = "".join(
            "<tr>"
            f"<td>{_fmt_int(r['rank'])}</td><td>{_fmt_int(r['rank_ub'])}</td>"
            f"<td>{html.escape(r['model'])}</td>"
            f"<td>{_fmt(r['rating'], r['status'])}</td><td>{_fmt_ci(r)}</td>"
            f"<td>{r['n_battles']}</td><td>{_fmt_pct(r['win_rate'])}</td></tr>"
            for r in self.rows
        )
        notes = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
        return (
            f"<p>{html.escape(self._header())}</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            + (f"<ul>{notes}</ul>" if notes else "")
        )


def _fmt_int(v: int | None) -> str:
    return "-" if v is None else str(v)


def _fmt(v: float | None, status: str = "ok") -> str:
    if v is None:
        return {"+inf": "+inf", "-inf": "-inf"}.get(status, "n/a")
    return f"{v:.4g}" if abs(v) < 10 else f"{v:.2f}"


def _fmt_ci(r: dict[str, Any]) -> str:
    if r["ci_low"] is None and r["ci_high"] is None:
        return "n/a"
    lo = "-inf" if r["ci_low"] is None else f"{r['ci_low']:.2f}"
    hi = "+inf" if r["ci_high"] is None else f"{r['ci_high']:.2f}"
    return f"[{lo}, {hi}]"


def _fmt_pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def _expected_score(d: np.ndarray, ties: str, tie_param: float | None) -> np.ndarray:
    if ties == "davidson" and tie_param:
        # P(a) : P(b) : P(tie) = e^{d/2} : e^{-d/2} : nu, scaled by e^{-|d|/2}.
        half = np.exp(-np.abs(d) / 2)
        win = np.where(d >= 0, 1.0, half * half)
        lose = np.where(d >= 0, half * half, 1.0)
        tie = tie_param * half
        return (win + 0.5 * tie) / (win + lose + tie)
    if ties == "rao-kupper" and tie_param:
        eta = math.log(tie_param)
        pa, pb = _sigmoid(d - eta), _sigmoid(-d - eta)
        return pa + 0.5 * (1.0 - pa - pb)
    return _sigmoid(d)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# ------------------------------------------------------------------ fitting
def _check_options(ties, alpha, bootstrap, level, components, anchor, models):
    if ties not in _TIES:
        raise InputError(f"ties = {ties!r}: expected one of {', '.join(_TIES)}")
    if not (np.isfinite(alpha) and alpha >= 0):
        raise InputError(f"alpha = {alpha}: expected a finite number >= 0")
    if bootstrap < 0:
        raise InputError(f"bootstrap = {bootstrap}: expected a number of rounds >= 0")
    if not 0 < level < 1:
        raise InputError(f"level = {level}: expected a number in (0, 1)")
    if components not in ("error", "separate"):
        raise InputError(f"components = {components!r}: expected 'error' or 'separate'")
    if anchor is not None:
        if anchor[0] not in models:
            raise InputError(f"anchor model {anchor[0]!r} is not among the models")
        if not np.isfinite(float(anchor[1])):
            raise InputError(f"anchor rating {anchor[1]!r} is not a finite number")


def _component_error(models, component) -> FitError:
    groups = []
    for c in range(int(component.max()) + 1):
        names = [models[i] for i in np.flatnonzero(component == c)]
        shown = ", ".join(names[:8]) + (
            f", ... ({len(names)} models)" if len(names) > 8 else ""
        )
        groups.append("{" + shown + "}")
    return FitError(
        f"the comparison graph is disconnected into {len(groups)} components: "
        + "; ".join(groups)
        + ". Ratings in different components are not comparable; pass "
        "components='separate' (CLI: --components separate) to fit each alone"
    )


def _separation_messages(models, out, alpha) -> list[str]:
    never_win = [models[i] for i in out["never_win"]]
    never_lose = [models[i] for i in out["never_lose"]]
    blocks = out["block"]
    split = any(
        len(np.unique(blocks[out["component"] == c])) > 1
        for c in np.unique(out["component"])
    )
    if not (never_win or never_lose or split):
        return []
    parts = []
    if never_win:
        parts.append("never win: " + ", ".join(never_win))
    if never_lose:
        parts.append("never lose: " + ", ".join(never_lose))
    if not parts:
        parts.append(
            "the win graph is not strongly connected (some group of models "
            "beats the rest every time)"
        )
    head = "no finite maximum-likelihood ratings exist (" + "; ".join(parts) + ")"
    if alpha > 0:
        prior = f"the finite ratings reported come from the L2 prior alpha = {alpha}"
        return [f"{head}; {prior}"]
    outside = [models[i] for i in np.flatnonzero(out["standing"] != 0)]
    return [
        (
            f"{head}; reported as +inf / -inf / undefined relative to the largest "
            f"fully connected group: {', '.join(outside)}. Pass alpha > 0 for "
            "finite ratings under a stated prior"
        )
    ]


def _fit_core(
    ba: BattleArrays,
    ties,
    alpha,
    anchor_idx,
    tol,
    max_iter,
    bootstrap,
    seed,
    level,
    n_jobs,
):
    weight = (
        None if ba.weight is None else np.ascontiguousarray(ba.weight, dtype=np.float64)
    )
    return _core.bt_leaderboard(
        np.ascontiguousarray(ba.a, dtype=np.uint32),
        np.ascontiguousarray(ba.b, dtype=np.uint32),
        np.ascontiguousarray(ba.outcome, dtype=np.uint8),
        weight,
        len(ba.models),
        ties,
        float(alpha),
        anchor_idx,
        float(tol),
        int(max_iter),
        True,
        int(bootstrap),
        int(seed) & 0xFFFF_FFFF_FFFF_FFFF,
        float(level),
        n_jobs,
    )


def _count_above(
    top: np.ndarray, bottom: np.ndarray, component: np.ndarray, ok: np.ndarray
) -> list[int | None]:
    """For each usable model ``i``: 1 + the number of usable models ``j`` of
    its component with ``top[j] > bottom[i]`` (None where ``ok`` is false).

    Compared by blocks of rows, so the work is O(K²) in vectorised numpy and
    the memory O(K) per row of the block.
    """
    k = len(top)
    counts = np.zeros(k, dtype=np.int64)
    step = 1024
    for s in range(0, k, step):
        e = min(k, s + step)
        above = (top[None, :] > bottom[s:e, None]) & ok[None, :]
        above &= component[None, :] == component[s:e, None]
        counts[s:e] = above.sum(axis=1)
    return [1 + int(c) if o else None for c, o in zip(counts, ok)]


def _ranks(
    values: np.ndarray, component: np.ndarray, ok: np.ndarray
) -> list[int | None]:
    """1 + number of models of the same component strictly above."""
    return _count_above(values, values, component, ok)


def _rank_ub(lo: np.ndarray, hi: np.ndarray, component: np.ndarray, ok: np.ndarray):
    """Arena's rank upper bound: 1 + models whose interval lies wholly above."""
    return _count_above(lo, hi, component, ok)


def _build(ba, out, *, ties, alpha, anchor, scale, bootstrap, seed, level, msgs):
    k = len(ba.models)
    factor, offset = _scale_params(scale, anchor)
    standing = np.asarray(out["standing"])
    theta = np.asarray(out["theta"], dtype=float)
    ext = theta.copy()
    ext[standing == 1], ext[standing == 2] = np.inf, -np.inf
    cov = out["cov"]
    se = (
        np.sqrt(np.clip(np.diag(cov), 0, None))
        if cov is not None
        else np.full(k, np.inf)
    )
    z = norm.ppf(0.5 + level / 2)
    if bootstrap > 0:
        n_def = np.asarray(out["n_defined"])
        lo = np.where(n_def > 0, out["ci_low"], -np.inf)
        hi = np.where(n_def > 0, out["ci_high"], np.inf)
        interval, ci_ok = "bootstrap percentile", n_def > 0
    else:
        lo, hi = ext - z * se, ext + z * se
        interval, ci_ok = "Wald (Hessian)", standing == 0
    component = np.asarray(out["component"])
    ranked = standing != 3
    ranks = _ranks(ext, component, ranked)
    rank_ub = _rank_ub(
        np.where(ci_ok, lo, -np.inf),
        np.where(ci_ok, hi, np.inf),
        component,
        ranked & ci_ok,
    )
    wins, losses, tied = (np.asarray(out[x]) for x in ("wins", "losses", "ties"))
    played = wins + losses + tied
    rows = []
    for i, m in enumerate(ba.models):
        fin = standing[i] == 0
        rows.append(
            {
                "model": m,
                "theta": float(theta[i]) if fin else None,
                "rating": float(factor * theta[i] + offset) if fin else None,
                "se": float(factor * se[i]) if fin and np.isfinite(se[i]) else None,
                "ci_low": _none_if_not_finite(factor * lo[i] + offset)
                if ci_ok[i]
                else None,
                "ci_high": _none_if_not_finite(factor * hi[i] + offset)
                if ci_ok[i]
                else None,
                "rank": ranks[i],
                "rank_ub": rank_ub[i],
                "n_battles": int(out["battles"][i]),
                "wins": float(wins[i]),
                "losses": float(losses[i]),
                "ties": float(tied[i]),
                "win_rate": float((wins[i] + 0.5 * tied[i]) / played[i])
                if played[i] > 0
                else None,
                "component": int(component[i]),
                "status": _STANDING[int(standing[i])],
                "n_degenerate": int(out["n_degenerate"][i]) if bootstrap > 0 else None,
            }
        )
    order = sorted(
        range(k),
        key=lambda i: (
            rows[i]["rank"] is None,
            rows[i]["rank"] or 0,
            -ext[i] if np.isfinite(ext[i]) else 0,
            ba.models[i],
        ),
    )
    constraint = (
        "mean zero" if anchor is None else f"anchor {anchor[0]} = {float(anchor[1]):g}"
    )
    if anchor is not None and component.max() > 0:
        constraint += " (other components: mean zero)"
    tie_ci = out.get("tie_ci") if bootstrap > 0 else None
    return Leaderboard(
        models=list(ba.models),
        rows=[rows[i] for i in order],
        constraint=constraint,
        ties=ties,
        scale=scale,
        alpha=float(alpha),
        tie_param=out["tie_param"],
        tie_param_se=out["tie_param_se"],
        tie_param_ci=tuple(tie_ci) if tie_ci else None,
        interval=interval,
        level=float(level),
        iterations=int(out["iterations"]),
        grad_norm=float(out["grad_norm"]),
        converged=bool(out["converged"]),
        warnings=[m for _, m in msgs],
        n_battles=len(ba.a),
        bootstrap_rounds=int(bootstrap),
        seed=int(seed) if bootstrap > 0 else None,
        theta_=ext,
        standing_=standing,
        component_=component,
        cov_=cov,
        bootstrap_draws_=out.get("boot_draws"),
        bootstrap_defined_=out.get("boot_defined"),
    )


def _fit(
    ba: BattleArrays,
    *,
    ties,
    alpha,
    anchor,
    scale,
    bootstrap,
    seed,
    level,
    components,
    tol,
    max_iter,
    n_jobs,
):
    _check_options(ties, alpha, bootstrap, level, components, anchor, ba.models)
    _scale_params(scale, anchor)
    if len(ba.models) < 2:
        raise InputError(
            f"need battles between at least 2 models; found {len(ba.models)}"
        )
    msgs: list[tuple[type[Warning], str]] = []
    if ba.n_self_battles:
        msgs.append(
            (
                DataQualityWarning,
                (
                    f"dropped {ba.n_self_battles} self-battle(s) (the same model "
                    f"on both sides), first at rows {ba.self_battle_rows}"
                ),
            )
        )
    anchor_idx = None if anchor is None else ba.models.index(anchor[0])
    out = _fit_core(
        ba, ties, alpha, anchor_idx, tol, max_iter, bootstrap, seed, level, n_jobs
    )
    component = np.asarray(out["component"])
    if component.max() > 0 and components == "error":
        raise _component_error(ba.models, component)
    if component.max() > 0:
        msgs.append(
            (
                DataQualityWarning,
                (
                    f"fitted {int(component.max()) + 1} components separately; "
                    "differences across components are undefined"
                ),
            )
        )
    msgs += [
        (SeparationWarning, m) for m in _separation_messages(ba.models, out, alpha)
    ]
    if out["tie_param_at_boundary"]:
        msgs.append(
            (
                DataQualityWarning,
                (
                    f"no ties among the fitted battles: the {ties} tie parameter "
                    "sits on its boundary and the fit is plain Bradley-Terry"
                ),
            )
        )
    if not out["converged"]:
        msgs.append(
            (
                ConvergenceWarning,
                (
                    f"Newton stopped after {out['iterations']} iterations with "
                    f"|grad| = {out['grad_norm']:.3g}, above the tolerance"
                ),
            )
        )
    if bootstrap > 0:
        msgs += _bootstrap_messages(ba.models, out, bootstrap)
    lb = _build(
        ba,
        out,
        ties=ties,
        alpha=alpha,
        anchor=anchor,
        scale=scale,
        bootstrap=bootstrap,
        seed=seed,
        level=level,
        msgs=msgs,
    )
    return lb, msgs


def _bootstrap_messages(models, out, rounds) -> list[tuple[type[Warning], str]]:
    msgs = []
    deg = np.asarray(out["n_degenerate"])
    hit = np.flatnonzero(deg > 0)
    if len(hit):
        listed = ", ".join(f"{models[i]} ({deg[i]})" for i in hit[:10])
        more = f" and {len(hit) - 10} more" if len(hit) > 10 else ""
        msgs.append(
            (
                DataQualityWarning,
                (
                    f"bootstrap rounds (of {rounds}) in which a model had no finite "
                    f"estimate: {listed}{more}; its interval includes those rounds as "
                    "+inf / -inf"
                ),
            )
        )
    if out["n_failed"]:
        msgs.append(
            (
                DataQualityWarning,
                f"{out['n_failed']} of {rounds} bootstrap rounds could not be fitted",
            )
        )
    if out["n_unconverged"]:
        msgs.append(
            (
                ConvergenceWarning,
                (
                    f"{out['n_unconverged']} of {rounds} bootstrap fits stopped "
                    "above the tolerance"
                ),
            )
        )
    return msgs


def _emit(msgs) -> None:
    for category, message in msgs:
        warnings.warn(message, category, stacklevel=3)


def fit_battle_arrays(
    model_a: np.ndarray,
    model_b: np.ndarray,
    outcome: np.ndarray,
    *,
    models: list[str] | None = None,
    weight: np.ndarray | None = None,
    ties: str = "half",
    alpha: float = 0.0,
    anchor: tuple[str, float] | None = None,
    scale: str = "elo",
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
    components: str = "error",
    tol: float = 1e-12,
    max_iter: int = 100,
    n_jobs: int | None = None,
) -> Leaderboard:
    """Fit a leaderboard from integer arrays (no table, no label parsing).

    Parameters
    ----------
    model_a, model_b
        Model indices of the two sides (``0 <= index < len(models)``).
    outcome
        0 side a wins, 1 side b wins, 2 tie.
    models
        Model names; default ``"0"``, ``"1"``, ... up to the largest index.
    weight, ties, alpha, anchor, scale, bootstrap, seed, level, components
        As in :func:`fit_leaderboard`.
    tol, max_iter, n_jobs
        As in :func:`fit_leaderboard`.

    Returns
    -------
    Leaderboard
    """
    a = np.asarray(model_a)
    b = np.asarray(model_b)
    if models is None:
        top = int(max(a.max(initial=0), b.max(initial=0))) + 1 if a.size else 0
        models = [str(i) for i in range(top)]
    ba = BattleArrays(list(models), a, b, np.asarray(outcome), weight)
    lb, msgs = _fit(
        ba,
        ties=ties,
        alpha=alpha,
        anchor=anchor,
        scale=scale,
        bootstrap=bootstrap,
        seed=seed,
        level=level,
        components=components,
        tol=tol,
        max_iter=max_iter,
        n_jobs=n_jobs,
    )
    _emit(msgs)
    return lb


def fit_leaderboard(
    data: str | Path | pl.DataFrame | dict,
    *,
    model_a: str = "model_a",
    model_b: str = "model_b",
    winner: str = "winner",
    weight: str | None = None,
    labels: dict[str, str] | None = None,
    format: str | None = None,
    ties: str = "half",
    alpha: float = 0.0,
    anchor: tuple[str, float] | None = None,
    scale: str = "elo",
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
    components: str = "error",
    tol: float = 1e-12,
    max_iter: int = 100,
    n_jobs: int | None = None,
) -> Leaderboard:
    """Rank models from pairwise battles with Bradley-Terry.

    Parameters
    ----------
    data
        A JSONL / JSON / CSV / Parquet file (optionally gzipped), a polars or
        pandas DataFrame, or a dict of columns; one row per battle.
    model_a, model_b, winner, weight, labels
        Columns and extra winner labels; see :func:`normalise_battles`.
    format
        File format when it cannot be told from the name.
    ties
        ``"half"`` (a tie is half a win to each side; Chatbot Arena's
        convention, ``tie (bothbad)`` included), ``"drop"``, ``"davidson"``
        (reports the tie parameter ``nu``) or ``"rao-kupper"`` (reports
        ``kappa``).
    alpha
        L2 prior: ``alpha/2 * ||theta||^2`` is added to the negative
        log-likelihood. Needed for finite ratings when some model never wins
        or never loses.
    anchor
        ``(model, rating)``: pin one model at this rating (on ``scale``)
        instead of centring the ratings.
    scale
        ``"elo"`` (``400/ln(10) * theta + 1000``) or ``"log"`` (``theta``).
    bootstrap
        Rounds of count-space bootstrap for percentile intervals; 0 gives
        Wald intervals from the Hessian.
    seed
        Seed of the bootstrap; results are identical for any ``n_jobs``.
    level
        Coverage of the intervals.
    components
        ``"error"``: a disconnected comparison graph raises
        :class:`FitError` listing the components. ``"separate"``: fit each
        component alone; differences across components are undefined.
    tol, max_iter
        Newton stops when ``max|grad| <= tol * total battle weight``.
    n_jobs
        Threads for the bootstrap (None: all cores).

    Returns
    -------
    Leaderboard

    Warns
    -----
    DataQualityWarning
        Self-battles dropped, components fitted separately, degenerate
        bootstrap rounds, tie parameter on its boundary.
    SeparationWarning
        Models with no finite maximum-likelihood rating (named).
    ConvergenceWarning
        Newton stopped above the tolerance.

    Notes
    -----
    The model is fitted on per-pair counts, collapsed in one pass in Rust;
    no battle-by-model matrix is formed. Style control is not implemented
    yet.

    References
    ----------
    Bradley & Terry (1952), Biometrika 39(3/4). Davidson (1970), JASA 65.
    Rao & Kupper (1967), JASA 62. Chiang et al. (2024), Chatbot Arena.
    """
    frame = _as_frame(data, format)
    ba = normalise_battles(
        frame,
        model_a=model_a,
        model_b=model_b,
        winner=winner,
        weight=weight,
        labels=labels,
    )
    lb, msgs = _fit(
        ba,
        ties=ties,
        alpha=alpha,
        anchor=anchor,
        scale=scale,
        bootstrap=bootstrap,
        seed=seed,
        level=level,
        components=components,
        tol=tol,
        max_iter=max_iter,
        n_jobs=n_jobs,
    )
    _emit(msgs)
    return lb


def _as_frame(data, format: str | None) -> pl.DataFrame:
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, (str, Path)):
        return read_table(data, format)
    if isinstance(data, dict):
        return pl.DataFrame(data)
    if type(data).__module__.startswith("pandas"):
        return pl.from_pandas(data)
    raise InputError(
        f"data of type {type(data).__name__}: expected a path, a polars or pandas "
        "DataFrame, or a dict of columns"
    )


# ----------------------------------------------------------- style control
#: Text features used for style control by default (Li et al. 2024, "Does
#: style matter? Disentangling style and substance in Chatbot Arena").
STYLE_TEXT_FEATURES = ("chars", "headers", "unordered_items", "ordered_items", "bold")
# Largest dense design (battles x (models + covariates)) style control builds.
_STYLE_MAX_CELLS = 50_000_000


def style_covariates(text_a, text_b, features=STYLE_TEXT_FEATURES) -> pl.DataFrame:
    """Arena-style covariates from the two answers of each battle.

    For each feature ``f`` (counted by :func:`rlhf_diag.features.text_features`)
    the covariate is ``(f_a - f_b) / (f_a + f_b)`` (0 when both are 0),
    then standardised to mean 0 and standard deviation 1 over the battles, as
    Chatbot Arena's style control does.

    Returns
    -------
    polars.DataFrame
        One column per feature, named ``style_<feature>``.
    """
    from rlhf_diag.features import FEATURES, text_features

    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise InputError(f"unknown style feature(s) {unknown}; known: {list(FEATURES)}")
    fa, fb = text_features(text_a), text_features(text_b)
    cols = {}
    for f in features:
        a = fa[f].to_numpy().astype(np.float64)
        b = fb[f].to_numpy().astype(np.float64)
        tot = a + b
        d = np.divide(a - b, tot, out=np.zeros_like(tot), where=tot > 0)
        sd = d.std()
        cols[f"style_{f}"] = (d - d.mean()) / sd if sd > 0 else d - d.mean()
    return pl.DataFrame(cols)


def _style_design(ba: BattleArrays, z: np.ndarray, ref: int) -> np.ndarray:
    n, k = len(ba.a), len(ba.models)
    cols = [m for m in range(k) if m != ref]
    where = np.full(k, -1)
    where[cols] = np.arange(k - 1)
    x = np.zeros((n, k - 1 + z.shape[1]))
    rows = np.arange(n)
    for side, sign in ((ba.a, 1.0), (ba.b, -1.0)):
        c = where[side]
        ok = c >= 0
        x[rows[ok], c[ok]] = sign
    x[:, k - 1 :] = z
    return x


def _style_constrain(coef, cov, k, ref, anchor_idx):
    """θ with the reference at 0, then centred (or anchored), and its
    covariance under that constraint."""
    keep = [m for m in range(k) if m != ref]
    theta = np.zeros(k)
    theta[keep] = coef[: k - 1]
    c = np.zeros((k, k))
    c[np.ix_(keep, keep)] = cov[: k - 1, : k - 1]
    w = np.zeros(k)
    if anchor_idx is None:
        w[:] = 1.0 / k
    else:
        w[anchor_idx] = 1.0
    t = np.eye(k) - np.outer(np.ones(k), w)
    return t @ theta, t @ c @ t.T


def fit_style_controlled(
    data: str | Path | pl.DataFrame | dict,
    *,
    style: list[str] | None = None,
    style_text: tuple[str, str] | None = None,
    style_features: tuple[str, ...] = STYLE_TEXT_FEATURES,
    model_a: str = "model_a",
    model_b: str = "model_b",
    winner: str = "winner",
    weight: str | None = None,
    labels: dict[str, str] | None = None,
    format: str | None = None,
    ties: str = "half",
    alpha: float = 0.0,
    anchor: tuple[str, float] | None = None,
    scale: str = "elo",
    level: float = 0.95,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> Leaderboard:
    """Bradley-Terry with per-battle style covariates (style control).

    Fits ``logit P(a wins) = theta_a - theta_b + gamma . z`` where ``z`` holds
    the battle's style covariates (side a relative to side b), and reports
    the style-controlled ratings and the style coefficients ``gamma``.

    Parameters
    ----------
    data, model_a, model_b, winner, weight, labels, format, anchor, scale, level
        As in :func:`fit_leaderboard`.
    style
        Covariate columns of the table, used as they are (already "a relative
        to b", e.g. ``sign(len_a - len_b)``).
    style_text
        ``(text_a, text_b)``: answer text columns; covariates are then built by
        :func:`style_covariates` from ``style_features``.
    ties
        ``"half"`` (a tie is a target of 1/2) or ``"drop"``.
    alpha
        L2 prior on theta (never on gamma).
    tol, max_iter
        Passed to the logistic engine (per-battle gradient tolerance).

    Returns
    -------
    Leaderboard
        With ``style`` filled; intervals are Wald intervals from the Hessian
        of the logistic engine (no bootstrap yet). When the data leave a
        style coefficient without a finite estimate (the longer answer always
        wins, say), every rating and coefficient is None and a
        :class:`SeparationWarning` says so.

    Notes
    -----
    The fit shares :func:`rlhf_diag.logistic.fit_logistic` (Newton, exact
    separation checks, Hessian errors) with the audit's style-only fit, on
    the design ``[one-hot(a) - one-hot(b) without a reference model | z]``.
    That design is dense: it is refused above 5e7 cells (battles x
    (models + covariates)); a battle-by-battle Newton over the ``K + p``
    parameters is not built yet.

    References
    ----------
    Li, Chiang et al. (2024), "Does style matter? Disentangling style and
    substance in Chatbot Arena", LMSYS blog.
    """
    from rlhf_diag.logistic import fit_logistic

    if (style is None) == (style_text is None):
        raise InputError(
            "give exactly one of style= (columns) or style_text= (two text columns)"
        )
    if ties not in ("half", "drop"):
        raise NotImplementedError(
            f"style control with ties = {ties!r}: only half and drop are built"
        )
    frame = _as_frame(data, format)
    if style_text is not None:
        missing = [c for c in style_text if c not in frame.columns]
        if missing:
            raise InputError(
                f"missing text column(s) {missing}; the data have {frame.columns}"
            )
        zf = style_covariates(
            frame[style_text[0]], frame[style_text[1]], style_features
        )
        frame = frame.hstack(zf)
        style = zf.columns
    missing = [c for c in style if c not in frame.columns]
    if missing:
        raise InputError(
            f"missing style column(s) {missing}; the data have {frame.columns}"
        )
    ba = normalise_battles(
        frame,
        model_a=model_a,
        model_b=model_b,
        winner=winner,
        weight=weight,
        labels=labels,
    )
    col_a, col_b = _pick_side_columns(frame, model_a, model_b)
    keep = frame[col_a].cast(pl.Utf8) != frame[col_b].cast(pl.Utf8)
    z = frame.filter(keep).select(style).cast(pl.Float64).to_numpy()
    if not np.isfinite(z).all():
        raise InputError(
            f"style columns {list(style)} hold missing or non-finite values"
        )
    k = len(ba.models)
    if len(ba.a) * (k - 1 + z.shape[1]) > _STYLE_MAX_CELLS:
        raise NotImplementedError(
            f"style control on {len(ba.a)} battles x {k} models needs the "
            "battle-by-battle Newton, which is not built yet (the dense design "
            "would exceed 5e7 cells)"
        )
    _check_options(ties, alpha, 0, level, "error", anchor, ba.models)
    _scale_params(scale, anchor)  # validates scale and anchor
    # The plain fit gives the graph checks and per-model totals.
    base = _fit_core(ba, "half", 1.0, None, 1e-8, 100, 0, 0, 0.95, None)
    component = np.asarray(base["component"])
    if component.max() > 0:
        raise _component_error(ba.models, component)
    msgs: list[tuple[type[Warning], str]] = []
    if ba.n_self_battles:
        msgs.append(
            (
                DataQualityWarning,
                (
                    f"dropped {ba.n_self_battles} self-battle(s), first at rows "
                    f"{ba.self_battle_rows}"
                ),
            )
        )
    y = np.where(ba.outcome == A_WINS, 1.0, np.where(ba.outcome == B_WINS, 0.0, 0.5))
    w = np.ones(len(y)) if ba.weight is None else ba.weight.copy()
    if ties == "drop":
        w[ba.outcome == TIE] = 0.0
    ref = int(np.argmax(base["battles"]))
    x = _style_design(ba, z, ref)
    names = [m for i, m in enumerate(ba.models) if i != ref] + list(style)
    penalised = [True] * (k - 1) + [False] * z.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_logistic(
            x,
            y,
            weight=w,
            l2=alpha,
            unpenalized=[not p for p in penalised],
            feature_names=names,
            tol=tol,
            max_iter=max_iter,
        )
    anchor_idx = None if anchor is None else ba.models.index(anchor[0])
    zq = norm.ppf(0.5 + level / 2)
    if fit.refused_reason is not None:
        bad = [f for f in fit.separated_features if f in style] or list(
            fit.separated_features
        )
        msgs.append(
            (
                SeparationWarning,
                (
                    f"style control: no finite estimate for {', '.join(bad)} (the "
                    "data are separated along it); ratings and style coefficients "
                    "are refused"
                ),
            )
        )
        theta = cov = None
    else:
        theta, cov = _style_constrain(fit.coef_, fit.cov_, k, ref, anchor_idx)
        if not fit.converged_:
            msgs.append(
                (
                    ConvergenceWarning,
                    (
                        f"style control: Newton stopped ({fit.status}) after "
                        f"{fit.n_iter_} steps"
                    ),
                )
            )
    style_rows = []
    for j, f in enumerate(style):
        ok = theta is not None
        c = float(fit.coef_[k - 1 + j]) if ok else None
        se = float(fit.se_[k - 1 + j]) if ok else None
        style_rows.append(
            {
                "feature": f,
                "coef": c,
                "se": se,
                "ci_low": c - zq * se if ok else None,
                "ci_high": c + zq * se if ok else None,
            }
        )
    out = {
        "theta": theta if theta is not None else np.zeros(k),
        "standing": np.zeros(k, np.uint8)
        if theta is not None
        else np.full(k, 3, np.uint8),
        "component": component,
        "cov": cov,
        "battles": base["battles"],
        "wins": base["wins"],
        "losses": base["losses"],
        "ties": base["ties"],
        "tie_param": None,
        "tie_param_se": None,
        "iterations": fit.n_iter_,
        "grad_norm": fit.grad_norm_ * fit.total_weight,
        "converged": fit.converged_,
        "n_degenerate": None,
    }
    lb = _build(
        ba,
        out,
        ties=ties,
        alpha=alpha,
        anchor=anchor,
        scale=scale,
        bootstrap=0,
        seed=0,
        level=level,
        msgs=msgs,
    )
    lb = _replace(lb, style=style_rows, interval="Wald (Hessian), style-controlled")
    _emit(msgs)
    return lb


def _replace(lb: Leaderboard, **changes) -> Leaderboard:
    from dataclasses import replace

    return replace(lb, **changes)
