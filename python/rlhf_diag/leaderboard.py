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

import logging
import math
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
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
    "option_names",
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
# How the built-in labels are shown in messages, by outcome.
_LABEL_SHOWN = {
    A_WINS: ("model_a", "a", "left"),
    B_WINS: ("model_b", "b", "right"),
    TIE: ("tie", "draw", "tie (bothbad)"),
}
_MEANING = {A_WINS: "side a wins", B_WINS: "side b wins", TIE: "a tie"}

# ------------------------------------------------------------ option names
# Messages name the options the caller used: Python keywords by default, the
# command line's flags inside ``option_names(CLI_OPTION_NAMES)``.
_PY_OPTION_NAMES = {
    "sides": "model_a= / model_b=",
    "winner": "winner=",
    "weight": "weight=",
    "labels": "labels={RAW: 'model_a' | 'model_b' | 'tie'}",
    "ties": "ties",
    "alpha": "alpha",
    "bootstrap": "bootstrap",
    "level": "level",
    "components": "components",
    "separate": "components='separate'",
    "anchor": "anchor",
    "scale": "scale",
    "n_jobs": "n_jobs",
    "se": "se=False",
    "style": "style=",
    "style_text": "style_text=",
}
#: The command line's names for the same options (``rlhf-diag leaderboard``).
CLI_OPTION_NAMES = {
    "sides": "--model-a-col / --model-b-col",
    "winner": "--winner-col",
    "weight": "--weight-col",
    "labels": "--label RAW=model_a|model_b|tie",
    "ties": "--ties",
    "alpha": "--alpha",
    "bootstrap": "--bootstrap",
    "level": "--level",
    "components": "--components",
    "separate": "--components separate",
    "anchor": "--anchor",
    "scale": "--scale",
    "n_jobs": "--threads",
    "se": "--no-se",
    "style": "--style-cols",
    "style_text": "--style-text",
}
_OPTION_NAMES: ContextVar[dict[str, str]] = ContextVar(
    "rlhf_diag_leaderboard_option_names", default=_PY_OPTION_NAMES
)


@contextmanager
def option_names(names: dict[str, str]):
    """Within this block, error and warning messages name the options as in
    ``names`` (e.g. :data:`CLI_OPTION_NAMES`) instead of Python keywords."""
    token = _OPTION_NAMES.set({**_PY_OPTION_NAMES, **names})
    try:
        yield
    finally:
        _OPTION_NAMES.reset(token)


def _opt(key: str) -> str:
    return _OPTION_NAMES.get()[key]


def _bad_option(key: str, value, expected: str) -> InputError:
    name = _opt(key)
    if name.startswith("--"):
        return InputError(f"{name} {value}: {expected}")
    return InputError(f"{name} = {value!r}: {expected}")


def _names(items, limit: int = 10) -> str:
    """Up to ``limit`` names, then how many there are in all."""
    items = [str(x) for x in items]
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f", ... ({len(items)} in all)"


def _norm_label(value: str) -> str:
    return "".join(value.split()).lower()


def _expected_labels(labels: dict[str, str] | None) -> str:
    """Every accepted winner label, grouped by meaning."""
    extra: dict[int, list[str]] = {A_WINS: [], B_WINS: [], TIE: []}
    for raw, meaning in (labels or {}).items():
        extra[_CANONICAL[_norm_label(str(meaning))]].append(str(raw))
    return "; ".join(
        f"{', '.join(list(_LABEL_SHOWN[c]) + extra[c])} ({_MEANING[c]})"
        for c in (A_WINS, B_WINS, TIE)
    )


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
    n_zero_weight, zero_weight_rows
        Rows dropped because their weight was 0, and the first of them.
    rows
        The input row of each battle kept (None when every row was kept).
    unrated
        Models that only appear in dropped zero-weight rows.
    """

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    weight: np.ndarray | None = None
    n_self_battles: int = 0
    self_battle_rows: list[int] = field(default_factory=list)
    n_zero_weight: int = 0
    zero_weight_rows: list[int] = field(default_factory=list)
    rows: np.ndarray | None = None
    unrated: list[str] = field(default_factory=list)


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
        f"(name the sides with {_opt('sides')}; one row per battle expected)"
    )


def _label_map(labels: dict[str, str] | None) -> dict[str, int]:
    table = dict(_LABELS)
    for raw, meaning in (labels or {}).items():
        key = _norm_label(str(meaning))
        if key not in _CANONICAL:
            raise InputError(
                f"winner label {raw!r} mapped to {meaning!r}; "
                f"expected model_a, model_b or tie ({_opt('labels')})"
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
            + f". Accepted (case and white space ignored): {_expected_labels(labels)}"
            f". Map others with {_opt('labels')}"
        )
    return codes.to_numpy().astype(np.uint8)


def _weights(frame: pl.DataFrame, weight: str | None) -> np.ndarray | None:
    if weight is None:
        return None
    if weight not in frame.columns:
        raise InputError(
            f"missing weight column {weight!r} ({_opt('weight')}); the data have "
            f"{frame.columns}"
        )
    try:
        w = frame[weight].cast(pl.Float64)
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"weight column {weight!r} is not numeric ({exc})") from None
    bad = w.is_null() | w.is_nan() | w.is_infinite() | (w < 0)
    if bad.any():
        first = int(bad.arg_true()[0])
        raise InputError(
            f"weight column {weight!r}: missing, negative or non-finite values at "
            f"rows {_rows_of(bad)} ({int(bad.sum())} in all; row {first} holds "
            f"{w[first]!r}); weights must be finite and >= 0"
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
            f"missing winner column {winner!r} ({_opt('winner')}); the data have "
            f"{frame.columns}"
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
    same = (side_a == side_b).to_numpy()
    n_self = int(same.sum())
    self_rows = np.flatnonzero(same)[:_MAX_ROWS_SHOWN].tolist()
    zero = np.zeros(len(same), bool) if w is None else (w == 0) & ~same
    if w is not None and (~same).any() and zero.sum() == (~same).sum():
        raise InputError(
            f"all {int((~same).sum())} weights in column {weight!r} are zero"
            + (" (self-battles aside)" if n_self else "")
            + ": nothing to fit"
        )
    drop = same | zero
    rows = None
    unrated: list[str] = []
    if drop.any():
        keep = ~drop
        rows = np.flatnonzero(keep)
        if zero.any():
            seen = set(side_a.filter(keep).to_list()) | set(side_b.filter(keep).to_list())
            only = pl.concat([side_a.filter(zero), side_b.filter(zero)]).unique().sort()
            unrated = [m for m in only.to_list() if m not in seen]
        side_a, side_b = side_a.filter(keep), side_b.filter(keep)
        outcome = outcome[keep]
        w = None if w is None else w[keep]
    models = pl.concat([side_a, side_b]).unique().sort().to_list()
    index = {m: i for i, m in enumerate(models)}
    a = side_a.replace_strict(index, return_dtype=pl.UInt32).to_numpy()
    b = side_b.replace_strict(index, return_dtype=pl.UInt32).to_numpy()
    return BattleArrays(
        models,
        a,
        b,
        outcome,
        w,
        n_self,
        self_rows,
        n_zero_weight=int(zero.sum()),
        zero_weight_rows=np.flatnonzero(zero)[:_MAX_ROWS_SHOWN].tolist(),
        rows=rows,
        unrated=unrated,
    )


def _scale_params(scale: str, anchor: tuple[str, float] | None) -> tuple[float, float]:
    if scale not in ("elo", "log"):
        raise _bad_option("scale", scale, "expected 'elo' or 'log'")
    factor = ELO_FACTOR if scale == "elo" else 1.0
    if anchor is not None:
        return factor, float(anchor[1])
    return factor, ELO_BASE if scale == "elo" else 0.0


@dataclass(frozen=True)
class Leaderboard:
    """A fitted leaderboard.

    Attributes
    ----------
    models
        Model names, in input order (sorted names when read from a table).
    rows
        One dict per model, sorted by component, then rank: ``model``, ``theta`` (natural
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
        ``"bootstrap percentile"``, ``"Wald (Hessian)"``, or ``"none"``
        (``se=False`` and no bootstrap).
    iterations, grad_norm, converged
        Newton's report: steps taken, final ``‖∇‖∞`` of the penalised
        negative log-likelihood, and whether the tolerance was reached.
    warnings
        Every warning raised by the fit, as text.
    cov_
        Covariance of θ under the constraint (K×K, natural scale; zero for
        models with no finite estimate and across components), formed from
        the fit's factor on first use; None with ``se=False``.
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
    _cov: np.ndarray | None = field(repr=False, default=None)
    _cov_factor: np.ndarray | None = field(repr=False, default=None)
    bootstrap_draws_: np.ndarray | None = field(repr=False, default=None)
    bootstrap_defined_: np.ndarray | None = field(repr=False, default=None)
    style: list[dict[str, Any]] | None = None
    style_dropped: list[str] | None = None

    # ----------------------------------------------------------- queries
    def _index(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise InputError(f"unknown model {model!r}") from None

    @property
    def cov_(self) -> np.ndarray | None:
        """Covariance of θ under the constraint (K×K, natural scale), formed
        on first use from the fit's factor ``V`` as ``VᵀV`` (O(K³), as much
        again as the fit's own inverse; zero across components); None when
        fitted with ``se=False``."""
        if self._cov is None and self._cov_factor is not None:
            k = len(self.models)
            v = self._cov_factor[:, :k]
            cov = v.T @ v
            comp = np.asarray(self.component_)
            cov[comp[:, None] != comp[None, :]] = 0.0
            object.__setattr__(self, "_cov", cov)
        return self._cov

    @property
    def _factor(self) -> float:
        return ELO_FACTOR if self.scale == "elo" else 1.0

    def difference(self, model_1: str, model_2: str) -> dict:
        """Rating difference ``model_1 - model_2`` with its Hessian standard
        error, on the leaderboard's scale: ``{"difference", "se"}``. Fitted
        with ``se=False`` there is no covariance: ``se`` is None and
        ``se_reason`` says why.

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
        var = None
        if self._cov is not None:
            c = self._cov
            var = c[i, i] + c[j, j] - 2.0 * c[i, j]
        elif self._cov_factor is not None:  # O(K): no K x K matrix formed
            d = self._cov_factor[:, i] - self._cov_factor[:, j]
            var = float(d @ d)
        if var is not None:
            out["se"] = float(self._factor * math.sqrt(max(var, 0.0)))
        else:
            out["se"] = None
            out["se_reason"] = (
                f"fitted with {_opt('se')}: no Hessian covariance was computed "
                "(fit again with standard errors on, the default, for one)"
            )
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
        # inf - inf (two models at the same end) is NaN and left out below.
        with np.errstate(invalid="ignore", over="ignore"):
            d = th[:, None] - th[None, :]
            p = _expected_score(d, self.ties, self.tie_param)
        same = self.component_[:, None] == self.component_[None, :]
        valid = same & ok[:, None] & ok[None, :] & np.isfinite(p)
        np.fill_diagonal(valid, False)
        p = np.where(valid, p, np.nan).astype(np.float64)
        cols = [pl.Series("model", self.models, dtype=pl.Utf8)]
        cols += [
            pl.Series(m, p[:, j], nan_to_null=True) for j, m in enumerate(self.models)
        ]
        return pl.DataFrame(cols)

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
                {
                    "style": [dict(x) for x in self.style],
                    "style_dropped_no_variation": list(self.style_dropped or []),
                }
                if self.style is not None
                else {}
            ),
        }

    def to_polars(self) -> pl.DataFrame:
        """One row per model, sorted by component, then rank."""
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
            + (
                "no intervals (no standard errors, no bootstrap)"
                if self.interval == "none"
                else f"{self.interval} {self.level:.0%} intervals"
            )
            + f"; Newton {self.iterations} "
            f"iterations, |grad| = {self.grad_norm:.2e}"
        )

    def summary(self) -> str:
        """The leaderboard as plain text (with a component column when the
        components were fitted separately)."""
        split = len(self.component_) and int(np.max(self.component_)) > 0
        lines = [self._header(), ""]
        lines.append(
            (f"{'comp':>4} " if split else "")
            + f"{'rank':>4} {'ub':>4}  {'model':<40} {'rating':>9} {'interval':>21} "
            f"{'battles':>8} {'win%':>6}"
        )
        for r in self.rows:
            lines.append(
                (f"{r['component']:>4} " if split else "")
                + f"{_fmt_int(r['rank']):>4} {_fmt_int(r['rank_ub']):>4}  "
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
        if self.style_dropped:
            lines.append(
                "style left out (never varies): " + ", ".join(self.style_dropped)
            )
        if self.rows:
            lines.append(UB_LEGEND)
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        """The report page (ratings plot, win-rate heatmap, tables) as a
        notebook fragment."""
        from rlhf_diag.report import build_page

        return build_page(self).fragment()


UB_LEGEND = (
    "ub: rank upper bound, 1 + the models whose interval lies wholly above "
    "(Chatbot Arena's)"
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
def _check_options(
    ties, alpha, bootstrap, level, components, anchor, models, n_jobs=None
):
    if ties not in _TIES:
        raise _bad_option("ties", ties, f"expected one of {', '.join(_TIES)}")
    if not (np.isfinite(alpha) and alpha >= 0):
        raise _bad_option("alpha", alpha, "expected a finite number >= 0")
    if bootstrap < 0:
        raise _bad_option("bootstrap", bootstrap, "expected a number of rounds >= 0")
    if not 0 < level < 1:
        raise _bad_option("level", level, "expected a number in (0, 1)")
    if components not in ("error", "separate"):
        raise _bad_option("components", components, "expected 'error' or 'separate'")
    if n_jobs is not None and n_jobs < 1:
        raise _bad_option("n_jobs", n_jobs, "expected a number of threads >= 1")
    if anchor is not None:
        if anchor[0] not in models:
            raise InputError(
                f"{_opt('anchor')}: model {anchor[0]!r} is not among the models "
                f"({len(models)}: {_names(models)})"
            )
        if not np.isfinite(float(anchor[1])):
            raise InputError(
                f"{_opt('anchor')}: rating {anchor[1]!r} is not a finite number"
            )


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
        f"{_opt('separate')} to fit each alone"
    )


# Known orders are counted exactly (ancestor sets of the win graph's block
# DAG) up to this many blocks; above it, by levels of that DAG (still
# consistent with every known order).
_MAX_ORDER_BLOCKS = 20_000
# ... and while the ancestor sets (one bit per model per block) stay below
# 2**31 bits (256 MB).
_MAX_ORDER_BITS = 2**31
# Up to this many models, and with at least K^2 battles, the win graph's arcs
# are marked in a dense K x K boolean table (one pass over the battles);
# otherwise the battles' cell keys are sorted.
_DENSE_ARCS_MAX = 4096


@dataclass(frozen=True)
class _Order:
    """Where each model stands in the win graph (arc winner -> loser; a tie
    is an arc both ways except under ``drop``).

    ``block``: strongly connected block; ``standing``: 0 in the main (largest)
    block of its component, 1 above it (+inf), 2 below it (-inf), 3 not
    ordered against it; ``above``: how many models are known to be above it
    (their block reaches its block; for a main-block model these are the +inf
    models of its component); ``exact``: False when ``above`` was counted by
    levels of the block DAG (more than ``_MAX_ORDER_BLOCKS`` blocks).
    """

    block: np.ndarray
    standing: np.ndarray
    above: np.ndarray
    exact: bool


def _reach(dag, sources: np.ndarray, n: int) -> np.ndarray:
    """Blocks reachable from ``sources`` along ``dag`` (sources included)."""
    from scipy import sparse
    from scipy.sparse import csgraph

    hub = sparse.csr_matrix(
        (np.ones(len(sources), bool), (np.full(len(sources), n), sources)),
        shape=(n + 1, n + 1),
    )
    g = sparse.bmat([[dag, None], [None, sparse.csr_matrix((1, 1), dtype=bool)]])
    seen = csgraph.breadth_first_order((g + hub).tocsr(), n, return_predecessors=False)
    out = np.zeros(n + 1, bool)
    out[seen] = True
    return out[:n]


def _win_order(
    ba: BattleArrays, ties: str, component: np.ndarray, main: np.ndarray | None
) -> _Order:
    """The win graph's blocks, each model's standing against the main block
    of its component (``main``: the main-block models, or None for the
    largest block, ties to the lowest model index, as the core picks it) and
    the number of models known to be above each model."""
    from scipy import sparse
    from scipy.sparse import csgraph

    k = len(ba.models)
    o = np.asarray(ba.outcome)
    # Arcs a -> b (a won, or a tie) and b -> a (b won, or a tie); under
    # ``drop`` a tie is no arc.
    if k <= _DENSE_ARCS_MAX and len(o) >= k * k:
        seen = np.zeros(k * k * 3, bool)  # (side a, side b, outcome) observed
        side_a = np.asarray(ba.a, dtype=np.uint32)
        side_b = np.asarray(ba.b, dtype=np.uint32)
        cell = np.multiply(side_a, np.uint32(3 * k), dtype=np.uint32)
        cell += np.multiply(side_b, np.uint32(3), dtype=np.uint32)
        cell += o
        seen[cell] = True
        del cell
        seen = seen.reshape(k, k, 3)
        arcs = seen[:, :, A_WINS] | seen[:, :, B_WINS].T
        if ties != "drop":
            arcs |= seen[:, :, TIE] | seen[:, :, TIE].T
        g = sparse.csr_matrix(arcs)
    else:
        fwd = o == A_WINS if ties == "drop" else o != B_WINS
        back = o == B_WINS if ties == "drop" else o != A_WINS
        a = np.asarray(ba.a, dtype=np.int64)
        b = np.asarray(ba.b, dtype=np.int64)
        keys = np.unique(np.concatenate([a[fwd] * k + b[fwd], b[back] * k + a[back]]))
        g = sparse.csr_matrix(
            (np.ones(len(keys), bool), (keys // k, keys % k)), shape=(k, k)
        )
    n_b, block = csgraph.connected_components(g, directed=True, connection="strong")
    gi, gj = g.nonzero()
    cross = block[gi] != block[gj]
    key = np.unique(block[gi[cross]].astype(np.int64) * n_b + block[gj[cross]])
    bsrc, bdst = key // n_b, key % n_b
    dag = sparse.csr_matrix(
        (np.ones(len(key), bool), (bsrc, bdst)), shape=(n_b, n_b)
    )
    size = np.bincount(block, minlength=n_b)
    first = np.full(n_b, k)
    np.minimum.at(first, block, np.arange(k))
    comp_b = np.asarray(component)[first]
    if main is None:
        by = np.lexsort((first, -size, comp_b))
        lead = np.r_[True, comp_b[by][1:] != comp_b[by][:-1]]
        main_b = by[lead]
    else:
        main_b = np.unique(block[np.asarray(main, bool)])
    below = _reach(dag, main_b, n_b)
    above_main = _reach(dag.T.tocsr(), main_b, n_b)
    st_b = np.full(n_b, 3, np.uint8)
    st_b[below] = 2
    st_b[above_main] = 1
    st_b[main_b] = 0
    # Topological order of the block DAG (Kahn), on plain lists.
    parents = dag.T.tocsr()
    kid_ptr, kids = dag.indptr.tolist(), dag.indices.tolist()
    par_ptr, pars = parents.indptr.tolist(), parents.indices.tolist()
    indeg = [par_ptr[v + 1] - par_ptr[v] for v in range(n_b)]
    ready = [v for v in range(n_b) if indeg[v] == 0]
    topo = []
    while ready:
        v = ready.pop()
        topo.append(v)
        for w in kids[kid_ptr[v] : kid_ptr[v + 1]]:
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(w)
    exact = n_b <= _MAX_ORDER_BLOCKS and n_b * k <= _MAX_ORDER_BITS
    if exact:
        # Ancestor sets as Python integers with one bit per model, the models
        # numbered block by block so that a block is a run of bits; filled in
        # topological order, counted by popcount.
        sizes = size.tolist()
        start = np.concatenate([[0], np.cumsum(size)[:-1]]).tolist()
        members = [((1 << sizes[p]) - 1) << start[p] for p in range(n_b)]
        anc = [0] * n_b
        for v in topo:
            acc = 0
            for p in pars[par_ptr[v] : par_ptr[v + 1]]:
                acc |= anc[p] | members[p]
            anc[v] = acc
        above_b = np.array([x.bit_count() for x in anc], dtype=np.int64)
        return _Order(block, st_b[block], above_b[block], True)
    level = [0] * n_b
    for v in topo:
        ps = pars[par_ptr[v] : par_ptr[v + 1]]
        if ps:
            level[v] = max(level[p] for p in ps) + 1
    # Models of the same component on a strictly lower level.
    lv = np.asarray(level, np.int64)[block]
    comp = np.asarray(component, np.int64)
    span = int(lv.max()) + 1
    keys = np.sort(comp * span + lv)
    above_m = np.searchsorted(keys, comp * span + lv) - np.searchsorted(
        keys, comp * span
    )
    return _Order(block, st_b[block], above_m.astype(np.int64), False)


def _separation_messages(models, out, alpha, order: _Order | None) -> list[str]:
    """The SeparationWarning text: which models have no finite MLE, where
    they stand against the group that is fitted, and which group that is."""
    if order is None:
        return []
    st = order.standing
    outside = np.flatnonzero(st != 0)
    if not len(outside):
        return []
    component = np.asarray(out["component"])
    never_win = [models[i] for i in out["never_win"]]
    never_lose = [models[i] for i in out["never_lose"]]
    parts = []
    if never_win:
        parts.append("never win: " + _names(never_win))
    if never_lose:
        parts.append("never lose: " + _names(never_lose))
    head = (
        f"no finite maximum-likelihood rating for {len(outside)} of {len(models)} "
        "models: not every model beats every other one, directly or through others"
        + (f" ({'; '.join(parts)})" if parts else "")
    )
    groups = []
    for c in np.unique(component[outside]):
        members = np.flatnonzero((component == c) & (st == 0))
        groups.append("{" + _names([models[i] for i in members]) + "}")
    group = (
        "the largest group whose models all beat one another, directly or "
        f"through others: {'; '.join(groups)}"
    )
    where = []
    for code, what in (
        (1, "above it (+inf)"),
        (2, "below it (-inf)"),
        (3, "not ordered against it (undefined)"),
    ):
        names = [models[i] for i in outside if st[i] == code]
        if names:
            where.append(f"{what}: {_names(names)}")
    where_text = "; ".join(where)
    if alpha > 0:
        return [
            f"{head}. Without the prior, {group}; {where_text}. The finite ratings "
            f"reported come from the L2 prior alpha = {alpha}"
        ]
    return [
        f"{head}. Fitted: {group}; reported {where_text}. Pass {_opt('alpha')} > 0 "
        "for finite ratings under a stated prior"
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
    se=True,
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
        bool(se),
        int(bootstrap),
        int(seed) & 0xFFFF_FFFF_FFFF_FFFF,
        float(level),
        n_jobs,
    )


def _count_above(
    top: np.ndarray, bottom: np.ndarray, component: np.ndarray, ok: np.ndarray
) -> np.ndarray:
    """For each model ``i``: the number of models ``j`` with ``ok[j]`` in its
    component with ``top[j] > bottom[i]`` (a NaN compares as False).

    One sort per component and a binary search per model: O(K log K).
    """
    counts = np.zeros(len(top), dtype=np.int64)
    for c in np.unique(component):
        in_c = component == c
        ref = top[in_c & ok]
        ref = np.sort(ref[~np.isnan(ref)])
        counts[in_c] = len(ref) - np.searchsorted(ref, bottom[in_c], side="right")
    return counts


def _ranks(ext, lo, hi, ci_ok, standing, component, order):
    """``rank``: 1 + the number of models known to be above (a higher θ in
    the fitted group, or a block of the win graph that reaches this model's
    block); ``rank_ub``: 1 + the models whose interval lies wholly above,
    where a model outside the fitted group counts by the win graph's known
    order (its θ is not a number, so it has no interval to compare). Both are
    None for a model not ordered against the fitted group."""
    main = standing == 0
    known = np.zeros(len(ext), np.int64) if order is None else order.above
    by_theta = _count_above(ext, ext, component, main)
    ok = main & ci_ok
    by_interval = _count_above(
        np.where(ok, lo, -np.inf), np.where(ok, hi, np.inf), component, ok
    )
    rank = 1 + known + np.where(main, by_theta, 0)
    rank_ub = 1 + known + np.where(ok, by_interval, 0)
    return rank, rank_ub


def _float_col(values: np.ndarray, keep: np.ndarray) -> pl.Series:
    v = np.where(keep, values, np.nan).astype(np.float64)
    v[~np.isfinite(v)] = np.nan
    return pl.Series(v, nan_to_null=True)


def _int_col(values: np.ndarray, keep: np.ndarray) -> pl.Series:
    s = pl.Series(np.asarray(values, dtype=np.int64))
    return s.set(pl.Series(~np.asarray(keep, bool)), None)


def _build(
    ba, out, *, ties, alpha, anchor, scale, bootstrap, seed, level, msgs, order=None
):
    k = len(ba.models)
    factor, offset = _scale_params(scale, anchor)
    standing = np.asarray(out["standing"])
    theta = np.asarray(out["theta"], dtype=float)
    ext = theta.copy()
    ext[standing == 1], ext[standing == 2] = np.inf, -np.inf
    # The item fit sends the covariance as a factor and its diagonal (the
    # K x K matrix is formed only if asked for); the style fit sends it whole.
    cov, cov_factor = out.get("cov"), out.get("cov_factor")
    var = out.get("var")
    if var is None and cov is not None:
        var = np.diag(cov)
    has_cov = var is not None
    se = np.sqrt(np.clip(var, 0, None)) if has_cov else np.full(k, np.inf)
    z = norm.ppf(0.5 + level / 2)
    if bootstrap == 0 and not has_cov:
        lo = hi = np.full(k, np.nan)
        interval, ci_ok = "none", np.zeros(k, bool)
    elif bootstrap > 0:
        n_def = np.asarray(out["n_defined"])
        lo = np.where(n_def > 0, out["ci_low"], -np.inf)
        hi = np.where(n_def > 0, out["ci_high"], np.inf)
        # An interpolation between -inf and +inf draws is no number: open end.
        lo, hi = np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)
        interval, ci_ok = "bootstrap percentile", n_def > 0
    else:
        with np.errstate(invalid="ignore"):
            lo, hi = ext - z * se, ext + z * se
        interval, ci_ok = "Wald (Hessian)", standing == 0
    component = np.asarray(out["component"])
    ranked = standing != 3
    rank, rank_ub = _ranks(ext, lo, hi, ci_ok, standing, component, order)
    wins, losses, tied = (
        np.asarray(out[x], dtype=np.float64) for x in ("wins", "losses", "ties")
    )
    played = wins + losses + tied
    fin = standing == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = (wins + 0.5 * tied) / played
    status = np.array([_STANDING[c] for c in range(4)])[standing.astype(np.int64)]
    n_deg = (
        np.asarray(out["n_degenerate"], dtype=np.int64)
        if bootstrap > 0
        else np.zeros(k, np.int64)
    )
    frame = pl.DataFrame(
        {
            "model": pl.Series(list(ba.models), dtype=pl.Utf8),
            "theta": _float_col(theta, fin),
            "rating": _float_col(factor * theta + offset, fin),
            "se": _float_col(factor * se, fin),
            "ci_low": _float_col(factor * lo + offset, ci_ok),
            "ci_high": _float_col(factor * hi + offset, ci_ok),
            "rank": _int_col(rank, ranked),
            "rank_ub": _int_col(rank_ub, ranked & (has_cov or bootstrap > 0)),
            "n_battles": pl.Series(np.asarray(out["battles"], dtype=np.int64)),
            "wins": pl.Series(wins),
            "losses": pl.Series(losses),
            "ties": pl.Series(tied),
            "win_rate": _float_col(win_rate, played > 0),
            "component": pl.Series(component.astype(np.int64)),
            "status": pl.Series(status, dtype=pl.Utf8),
            "n_degenerate": _int_col(n_deg, np.full(k, bootstrap > 0)),
        }
    )
    # Sorted by component, rank (unranked last), θ (highest first), name.
    sort_key = np.lexsort(
        (
            np.asarray(ba.models, dtype=object).astype(str),
            -np.where(np.isfinite(ext), ext, 0.0),
            np.where(ranked, rank, 0),
            ~ranked,
            component,
        )
    )
    rows = frame[sort_key].to_dicts()
    constraint = (
        "mean zero" if anchor is None else f"anchor {anchor[0]} = {float(anchor[1]):g}"
    )
    if anchor is not None and component.max() > 0:
        constraint += " (other components: mean zero)"
    tie_ci = out.get("tie_ci") if bootstrap > 0 else None
    return Leaderboard(
        models=list(ba.models),
        rows=rows,
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
        _cov=None if cov is None else np.asarray(cov),
        _cov_factor=None if cov_factor is None else np.asarray(cov_factor),
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
    se=True,
):
    _check_options(
        ties, alpha, bootstrap, level, components, anchor, ba.models, n_jobs
    )
    _scale_params(scale, anchor)
    if len(ba.models) < 2:
        dropped = (
            f" (after dropping {ba.n_self_battles} self-battle(s))"
            if ba.n_self_battles
            else ""
        )
        raise InputError(
            f"need battles between at least 2 models; found {len(ba.models)}"
            + dropped
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
    if ba.n_zero_weight:
        gone = (
            f"; model(s) left with no battles, not rated: {_names(ba.unrated)}"
            if ba.unrated
            else ""
        )
        msgs.append(
            (
                DataQualityWarning,
                (
                    f"dropped {ba.n_zero_weight} battle(s) of weight 0, first at "
                    f"rows {ba.zero_weight_rows}{gone}"
                ),
            )
        )
    anchor_idx = None if anchor is None else ba.models.index(anchor[0])
    scale_w = _weight_scale(ba.weight)
    fit_ba = ba if scale_w == 1.0 else _replace_arrays(ba, weight=ba.weight / scale_w)
    try:
        out = dict(
            _fit_core(
                fit_ba,
                ties,
                alpha / scale_w,
                anchor_idx,
                tol,
                max_iter,
                bootstrap,
                seed,
                level,
                n_jobs,
                se,
            )
        )
    except InputError as exc:
        text = str(exc)
        if anchor is None or "anchor model" not in text:
            raise
        where = {"PlusInf": "+inf", "MinusInf": "-inf"}.get(
            text.rsplit(" ", 1)[-1], "not ordered against the fitted group"
        )
        raise InputError(
            f"{_opt('anchor')}: {anchor[0]!r} has no finite estimate ({where}: "
            "it is outside the largest group of models that beat one another); "
            "anchor a model of that group, or pass "
            f"{_opt('alpha')} > 0"
        ) from None
    if scale_w != 1.0:
        _unscale(out, scale_w)
    component = np.asarray(out["component"])
    has = np.asarray(out["battles"]) > 0
    if not has.all():
        # Models given by index with no battles: alone, with nothing to rate.
        standing = np.asarray(out["standing"]).copy()
        standing[~has] = 3
        out["standing"] = standing
        lonely = [ba.models[i] for i in np.flatnonzero(~has)]
        out["never_win"] = [i for i in out["never_win"] if has[i]]
        out["never_lose"] = [i for i in out["never_lose"] if has[i]]
        msgs.append(
            (
                DataQualityWarning,
                (
                    f"{len(lonely)} model(s) have no battles and are not rated: "
                    f"{_names(lonely)}"
                ),
            )
        )
    played_comps, comp_of = np.unique(component[has], return_inverse=True)
    if len(played_comps) > 1 and components == "error":
        raise _component_error([m for m, h in zip(ba.models, has) if h], comp_of)
    if len(played_comps) > 1:
        msgs.append(
            (
                DataQualityWarning,
                (
                    f"fitted {len(played_comps)} components separately; "
                    "differences across components are undefined"
                ),
            )
        )
    standing = np.asarray(out["standing"])
    order = None
    # With a prior every rating is finite and the core skips the win graph;
    # the graph is rebuilt here, for the warning, only when the core's quick
    # pass could not prove every component strongly connected.
    if (alpha > 0 and not out["strongly_connected"]) or (standing[has] != 0).any():
        order = _win_order(
            ba, ties, component, None if alpha > 0 else (standing == 0) | ~has
        )
    msgs += [
        (SeparationWarning, m)
        for m in _separation_messages(ba.models, out, alpha, order)
    ]
    if alpha > 0:
        order = None  # every rating is finite: ranks come from θ alone
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
        order=order,
    )
    return lb, msgs


def _replace_arrays(ba: BattleArrays, **changes) -> BattleArrays:
    from dataclasses import replace

    return replace(ba, **changes)


# Weights are rescaled by a power of 4 when their mean lies outside
# [4**-_WEIGHT_POW, 4**_WEIGHT_POW].
_WEIGHT_POW = 5


def _weight_scale(w: np.ndarray | None) -> float:
    """A power of 4 near the mean positive weight, or 1 when that mean is
    moderate.

    The penalised likelihood with weights ``w`` and prior ``alpha`` is ``c``
    times the one with ``w / c`` and ``alpha / c``: same optimum, covariance
    ``c`` times smaller, gradient ``c`` times larger. Newton's tolerance is
    relative to the total weight but never below an absolute floor, and sums
    of weights near 1e308 overflow, so extreme weights are fitted as ``w / c``
    and the outputs scaled back (exactly: ``c`` is a power of 4).
    """
    if w is None or not len(w):
        return 1.0
    with np.errstate(over="ignore"):
        total = float(np.sum(w))
    if not math.isfinite(total):
        raise InputError(
            "the battle weights sum past the largest float "
            f"({np.finfo(np.float64).max:.4g}): divide them by a common factor"
        )
    positive = int(np.count_nonzero(w))
    if positive == 0 or total == 0.0:
        raise InputError(f"all {len(w)} weights are zero: nothing to fit")
    e = math.frexp(total / positive)[1]
    half = round((e - 1) / 2)
    if abs(half) <= _WEIGHT_POW:
        return 1.0
    return math.ldexp(1.0, 2 * half)


def _unscale(out: dict, c: float) -> None:
    """Outputs of a fit on ``w / c`` (with ``alpha / c``) back on ``w``."""
    for key in ("wins", "losses", "ties"):
        out[key] = np.asarray(out[key]) * c
    out["grad_norm"] = out["grad_norm"] * c
    if out.get("cov") is not None:
        out["cov"] = np.asarray(out["cov"]) / c
    if out.get("var") is not None:
        out["var"] = np.asarray(out["var"]) / c
        out["cov_factor"] = np.asarray(out["cov_factor"]) / math.sqrt(c)
    if out.get("tie_param_se") is not None:
        out["tie_param_se"] = out["tie_param_se"] / math.sqrt(c)


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


def _refuse_positions(bad: np.ndarray, arr: np.ndarray, what: str, why: str) -> None:
    if bad.any():
        pos = np.flatnonzero(bad)
        more = (
            f" ({len(pos)} positions, first {pos[:_MAX_ROWS_SHOWN].tolist()})"
            if len(pos) > 1
            else ""
        )
        raise InputError(f"{what}[{pos[0]}] = {arr[pos[0]].item()!r} {why}{more}")


def _numeric_1d(x, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise InputError(f"{what}: expected a 1-d array, got shape {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{what}: expected numbers, got an array of dtype {arr.dtype}")
    return arr


def _index_array(
    x, what: str, n_models: int | None, top: int | None = None
) -> tuple[np.ndarray, int]:
    """Model indices as ``uint32`` and their largest value, refusing
    non-integers, negatives and indices past the models (naming the position
    and value). ``top``: the largest value when already known (uint32 input
    scanned by the core)."""
    arr = _numeric_1d(x, what)
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(arr) | (arr != np.floor(arr))
        _refuse_positions(bad, arr, what, "is not an integer model index")
    if not arr.size:
        return arr.astype(np.uint32), -1
    # Reductions first; the masks that locate a fault only on failure.
    if arr.dtype.kind != "u" and arr.min() < 0:
        _refuse_positions(arr < 0, arr, what, "is a negative model index")
    limit = np.iinfo(np.uint32).max if n_models is None else n_models
    top = int(arr.max()) if top is None else top
    if top >= limit:
        _refuse_positions(
            arr >= limit,
            arr,
            what,
            f"is out of range: {n_models} models (indices 0 to {n_models - 1})"
            if n_models is not None
            else "is past the largest model index (2**32 - 2)",
        )
    return (arr if arr.dtype == np.uint32 else arr.astype(np.uint32)), top


def _core_ready(model_a, model_b, outcome):
    """The three arrays when they are already 1-d contiguous ``uint32`` /
    ``uint32`` / ``uint8`` of one length (the form :func:`load_battles` and
    the simulator give); None otherwise."""
    arrs = [np.asarray(x) for x in (model_a, model_b, outcome)]
    wanted = (np.uint32, np.uint32, np.uint8)
    if not all(
        x.ndim == 1 and x.dtype == t and x.flags.c_contiguous
        for x, t in zip(arrs, wanted)
    ) or len({len(x) for x in arrs}) > 1:
        return None
    return arrs


def _scan(model_a, model_b, outcome):
    """``(top_a, top_b, n_self, top_outcome)`` from one pass in the core when
    the arrays are :func:`_core_ready`; None otherwise."""
    arrs = _core_ready(model_a, model_b, outcome)
    return None if arrs is None else _core.bt_scan(*arrs)


def _unchecked_arrays(model_a, model_b, outcome, models, weight):
    """The arrays as they are, for the core to check as it counts, when
    nothing needs converting or scanning first: named models (no repeats), no
    weights, and non-empty :func:`_core_ready` arrays. None otherwise. The
    core refuses any bad row or self-battle; the caller then goes through
    :func:`_battle_arrays`, which names the rows or drops the self-battles
    with a warning."""
    if models is None or weight is not None:
        return None
    arrs = _core_ready(model_a, model_b, outcome)
    if arrs is None or not len(arrs[0]):
        return None
    names = [str(m) for m in models]
    if len(set(names)) < len(names):
        return None
    return BattleArrays(names, *arrs)


def _battle_arrays(model_a, model_b, outcome, models, weight) -> BattleArrays:
    """Validate the arrays of :func:`fit_battle_arrays` and drop zero-weight
    battles (counted)."""
    n_models = None if models is None else len(models)
    scanned = _scan(model_a, model_b, outcome)
    top_a, top_b, n_self, top_o = (None,) * 4 if scanned is None else scanned
    a, top_a = _index_array(model_a, "model_a", n_models, top_a)
    b, top_b = _index_array(model_b, "model_b", n_models, top_b)
    o = _numeric_1d(outcome, "outcome")
    lengths = {"model_a": len(a), "model_b": len(b), "outcome": len(o)}
    w = None
    if weight is not None:
        w = _numeric_1d(weight, "weight").astype(np.float64)
        lengths["weight"] = len(w)
    if len(set(lengths.values())) > 1:
        raise InputError(
            "battle arrays differ in length: "
            + ", ".join(f"{k} {v}" for k, v in lengths.items())
        )
    if o.size and (
        o.dtype.kind == "f"
        or (o.dtype.kind != "u" and o.min() < 0)
        or (o.max() if top_o is None else top_o) > TIE
    ):
        with np.errstate(invalid="ignore"):
            _refuse_positions(
                ~np.isin(o, (A_WINS, B_WINS, TIE)),
                o,
                "outcome",
                "is not 0 (side a wins), 1 (side b wins) or 2 (tie)",
            )
    if w is not None:
        _refuse_positions(~np.isfinite(w), w, "weight", "is not a finite number")
        _refuse_positions(w < 0, w, "weight", "is negative")
    if models is None:
        models = [str(i) for i in range(max(top_a, top_b) + 1)]
    models = [str(m) for m in models]
    if len(set(models)) < len(models):
        seen: set[str] = set()
        dup = sorted({m for m in models if m in seen or seen.add(m)})
        raise InputError(f"models: repeated name(s) {_names(dup)}")
    # One pass for self-battles; the masks below only when something drops.
    if n_self is None:
        same = a == b
        n_self = int(np.count_nonzero(same))
    else:
        same = (a == b) if n_self else None
    n_zero = 0
    drop = same if n_self else None
    zero_rows: list[int] = []
    if w is not None:
        zero = w == 0
        if n_self:
            zero &= ~same
        n_zero = int(np.count_nonzero(zero))
        if n_zero and n_zero == len(a) - n_self:
            raise InputError(
                f"all {n_zero} weights are zero"
                + (" (self-battles aside)" if n_self else "")
                + ": nothing to fit"
            )
        if n_zero:
            zero_rows = np.flatnonzero(zero)[:_MAX_ROWS_SHOWN].tolist()
            drop = zero if drop is None else drop | zero
    self_rows = np.flatnonzero(same)[:_MAX_ROWS_SHOWN].tolist() if n_self else []
    rows = None
    if drop is not None:
        keep = ~drop
        rows = np.flatnonzero(keep)
        a, b, o = a[keep], b[keep], o[keep]
        w = None if w is None else w[keep]
    return BattleArrays(
        models,
        a,
        b,
        o if o.dtype == np.uint8 else o.astype(np.uint8),
        w,
        n_self,
        self_rows,
        n_zero_weight=n_zero,
        zero_weight_rows=zero_rows,
        rows=rows,
    )


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
    se: bool = True,
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
    tol, max_iter, n_jobs, se
        As in :func:`fit_leaderboard`.

    Returns
    -------
    Leaderboard
    """
    opts = dict(
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
        se=se,
    )
    fast = _unchecked_arrays(model_a, model_b, outcome, models, weight)
    if fast is not None:
        try:
            lb, msgs = _fit(fast, **opts)
        except InputError as exc:
            first = exc
        else:
            _emit(msgs)
            return lb
    ba = _battle_arrays(model_a, model_b, outcome, models, weight)
    if fast is not None and not ba.n_self_battles:
        # The rows were sound: the error was about something else.
        raise first
    lb, msgs = _fit(ba, **opts)
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
    se: bool = True,
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
    se
        Hessian standard errors (per model, for :meth:`Leaderboard.difference`,
        and the Wald intervals when ``bootstrap`` is 0). False skips the
        dense ``K x K`` factorisation and inverse, ``O(K^3)`` time and
        ``8 K^2`` bytes (about half the fit at ``K = 1000``, hours at
        ``K = 10^4``): ``se`` is then null, and without a bootstrap there are
        no intervals and no ``rank_ub``.

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
    no battle-by-model matrix is formed. Style control is
    :func:`fit_style_controlled`.

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
        se=se,
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


@dataclass
class _StyleFit:
    """The fields of a logistic fit that :func:`fit_style_controlled` reads,
    from the battle-by-battle Newton."""

    coef_: np.ndarray
    cov_: np.ndarray | None
    se_: np.ndarray | None
    n_iter_: int
    grad_norm_: float
    converged_: bool
    status: str
    total_weight: float
    refused_reason: str | None
    separated_features: list[str]


def _style_sparse_fit(ba, z, y, w, ref, names, alpha, tol, max_iter) -> _StyleFit:
    """Style control by the core's battle-by-battle Newton (no design)."""
    import re

    try:
        raw = _core.bt_style_newton(
            np.ascontiguousarray(ba.a, dtype=np.uint32),
            np.ascontiguousarray(ba.b, dtype=np.uint32),
            np.ascontiguousarray(z, dtype=np.float64).reshape(len(ba.a), z.shape[1]),
            np.ascontiguousarray(y, dtype=np.float64),
            np.ascontiguousarray(w, dtype=np.float64),
            len(ba.models),
            ref,
            float(alpha),
            float(tol),
            int(max_iter),
        )
    except FitError as exc:  # the core numbers models and covariates
        style = names[len(ba.models) - 1 :]
        msg = re.sub(
            r"model #(\d+)", lambda m: f"model {ba.models[int(m[1])]!r}", str(exc)
        )
        msg = re.sub(
            r"style covariate #(\d+)", lambda m: f"style {style[int(m[1])]!r}", msg
        )
        raise FitError(msg) from None
    status = raw["status"]
    cov = raw["cov"]
    refused = None
    separated = [names[j] for j in raw["separated"]]
    if status == "separated":
        refused = (
            f"separated along {', '.join(separated)}"
            if separated
            else (
                f"coefficients grow without bound (Newton stopped after "
                f"{raw['iterations']} steps with margins beyond 30 logits; the "
                "separating direction was not identified)"
            )
        )
        cov = None
    return _StyleFit(
        coef_=np.asarray(raw["coef"]),
        cov_=cov,
        se_=None if cov is None else np.sqrt(np.diag(cov)),
        n_iter_=int(raw["iterations"]),
        grad_norm_=float(raw["grad_norm"]),
        converged_=status == "converged",
        status=status,
        total_weight=float(raw["total_weight"]),
        refused_reason=refused,
        separated_features=separated,
    )


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
    _engine: str = "auto",
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
    Up to 5e7 cells (battles x (models + covariates)) the fit shares
    :func:`rlhf_diag.logistic.fit_logistic` (Newton, exact separation
    checks, Hessian errors) with the audit's style-only fit, on the dense
    design ``[one-hot(a) - one-hot(b) without a reference model | z]``.
    Above that, a battle-by-battle Newton in the core fits the same
    objective over the ``K - 1 + p`` coefficients without forming the
    design (memory: the battles copied once in pair order plus the
    ``(K - 1 + p)^2`` Hessian); its
    separation check certifies the directions Newton drifts along, as the
    dense engine's second check does. The two agree to the tolerance.

    References
    ----------
    Li, Chiang et al. (2024), "Does style matter? Disentangling style and
    substance in Chatbot Arena", LMSYS blog.
    """
    from rlhf_diag.logistic import fit_logistic

    if (style is None) == (style_text is None):
        raise InputError(
            f"give exactly one of {_opt('style')} (columns) or {_opt('style_text')} "
            "(two text columns)"
        )
    if ties not in ("half", "drop"):
        raise NotImplementedError(
            f"style control with {_opt('ties')} {ties}: only half and drop are built"
        )
    frame = _as_frame(data, format)
    if style_text is not None:
        missing = [c for c in style_text if c not in frame.columns]
        if missing:
            raise InputError(
                f"missing text column(s) {missing} ({_opt('style_text')}); the data "
                f"have {frame.columns}"
            )
        zf = style_covariates(
            frame[style_text[0]], frame[style_text[1]], style_features
        )
        frame = frame.hstack(zf)
        style = zf.columns
    missing = [c for c in style if c not in frame.columns]
    if missing:
        raise InputError(
            f"missing style column(s) {missing} ({_opt('style')}); the data have "
            f"{frame.columns}"
        )
    ba = normalise_battles(
        frame,
        model_a=model_a,
        model_b=model_b,
        winner=winner,
        weight=weight,
        labels=labels,
    )
    z = frame.select(style).cast(pl.Float64).to_numpy()
    if ba.rows is not None:  # self-battles and zero weights dropped
        z = z[ba.rows]
    if not np.isfinite(z).all():
        bad_row, bad_col = np.argwhere(~np.isfinite(z))[0]
        row = int(bad_row if ba.rows is None else ba.rows[bad_row])
        raise InputError(
            f"style columns {list(style)} hold missing or non-finite values "
            f"(first: column {style[bad_col]!r}, row {row})"
        )
    # A feature that never varies carries no style information and makes the
    # design singular (standardised text features of a constant are all 0).
    varies = (z.max(axis=0) > z.min(axis=0)) if len(z) else np.zeros(len(style), bool)
    style_dropped = [f for f, v in zip(style, varies) if not v]
    style = [f for f, v in zip(style, varies) if v]
    z = z[:, varies]
    k = len(ba.models)
    if _engine not in ("auto", "dense", "sparse"):
        raise InputError(f"_engine = {_engine!r}: expected auto, dense or sparse")
    sparse = _engine == "sparse" or (
        _engine == "auto" and len(ba.a) * (k - 1 + z.shape[1]) > _STYLE_MAX_CELLS
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
    if ba.n_zero_weight:
        msgs.append(
            (
                DataQualityWarning,
                (
                    f"dropped {ba.n_zero_weight} battle(s) of weight 0, first at "
                    f"rows {ba.zero_weight_rows}"
                    + (
                        f"; model(s) left with no battles, not rated: "
                        f"{_names(ba.unrated)}"
                        if ba.unrated
                        else ""
                    )
                ),
            )
        )
    if style_dropped:
        msgs.append(
            (
                DataQualityWarning,
                (
                    "style control: left out feature(s) that never vary over the "
                    f"battles: {', '.join(style_dropped)} (no style information; "
                    "no coefficient)"
                ),
            )
        )
    y = np.where(ba.outcome == A_WINS, 1.0, np.where(ba.outcome == B_WINS, 0.0, 0.5))
    w = np.ones(len(y)) if ba.weight is None else ba.weight.copy()
    if ties == "drop":
        w[ba.outcome == TIE] = 0.0
    ref = int(np.argmax(base["battles"]))
    names = [m for i, m in enumerate(ba.models) if i != ref] + list(style)
    if sparse:
        fit = _style_sparse_fit(ba, z, y, w, ref, names, alpha, tol, max_iter)
    else:
        x = _style_design(ba, z, ref)
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
        what = (
            f"no finite estimate for {', '.join(bad)} (the data are separated "
            "along it)"
            if bad
            else fit.refused_reason
        )
        msgs.append(
            (
                SeparationWarning,
                f"style control: {what}; ratings and style coefficients are refused",
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
    lb = _replace(
        lb,
        style=style_rows,
        style_dropped=style_dropped,
        interval="Wald (Hessian), style-controlled",
    )
    _emit(msgs)
    return lb


def _replace(lb: Leaderboard, **changes) -> Leaderboard:
    from dataclasses import replace

    return replace(lb, **changes)
