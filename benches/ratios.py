"""Print the ours-versus-peer ratio table from asv's results.

Usage (from ``benches/``, after an ``asv run`` that saved results)::

    python ratios.py                 # the newest results file
    python ratios.py --results .asv/results/vm/abc123-existing-....json
    python ratios.py --results OLD.json --results NEW.json   # NEW wins per size

Reads one results file (asv's JSON, format version 2), pairs every timing of
ours with each peer's at the same size, and prints Markdown: the ratio table
(how many times faster ours is; the issue's target and verdict at the size
each target is set, the ratio alone at other sizes), the absolute
targets, peak memory, and the ``track_`` accuracy figures. Needs only the
standard library.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (what, ours, [(peer, peer benchmark, target "ours faster by" or None,
# size the target is set at or None for every size)]). The issues set each
# target at one size (item BT at K = 1000, N = 1e7; text on >= 1 GB; KL at
# 1e8 tokens; feature BT at 1e6 rows); other sizes show the ratio alone.
# A target below 1 ("<= 2x") reads: ours may take at most that many times the
# peer's time (the plain read is a floor, not a rival).
BT_AT = "models_x_battles=1000x10000000"
TEXT_AT = "n_texts=1000000"
KL_AT = "n_tokens=100000000"
COMPARISONS = [
    (
        "text features",
        "bench_text.TextFeatures.time_ours",
        [
            ("polars expressions", "bench_text.TextPolars.time_polars", 2.0, TEXT_AT),
            ("Python re, tuned", "bench_text.TextPythonRe.time_python_re", 50.0, TEXT_AT),
            (
                "Python re, reference",
                "bench_text.TextReference.time_reference",
                50.0,
                TEXT_AT,
            ),
        ],
    ),
    (
        "item BT, ratings only (se=False: what the peers compute)",
        "bench_bt.ItemBT.time_ours_no_se",
        [
            ("evalica", "bench_bt.ItemBTEvalica.time_evalica", 20.0, BT_AT),
            ("FastChat L-BFGS", "bench_bt.ItemBTFastChat.time_fastchat", 100.0, BT_AT),
            ("choix ILSR", "bench_bt.ItemBTChoix.time_choix", None, None),
        ],
    ),
    (
        "item BT, default (ratings + Hessian SEs)",
        "bench_bt.ItemBT.time_ours",
        [
            ("evalica", "bench_bt.ItemBTEvalica.time_evalica", 20.0, BT_AT),
            ("FastChat L-BFGS", "bench_bt.ItemBTFastChat.time_fastchat", 100.0, BT_AT),
        ],
    ),
    (
        "BT bootstrap",
        "bench_bt.Bootstrap.time_ours",
        [("FastChat L-BFGS", "bench_bt.BootstrapFastChat.time_fastchat", None, None)],
    ),
    (
        "feature BT",
        "bench_feature_bt.FeatureBT.time_ours",
        [
            (
                "scikit-learn lbfgs",
                "bench_feature_bt.FeatureBTSklearn.time_sklearn",
                4.0,
                "n_rows=1000000",
            )
        ],
    ),
    (
        "KL estimators",
        "bench_kl.KL.time_ours",
        [
            ("numpy", "bench_kl.KLNumpy.time_numpy", 3.0, KL_AT),
            ("torch CPU", "bench_kl.KLTorch.time_torch", 3.0, KL_AT),
            ("plain read (floor)", "bench_kl.KL.time_plain_read", 0.5, KL_AT),
        ],
    ),
]

# (benchmark, size label, limit in seconds).
ABSOLUTE = [
    ("bench_bt.ItemBT.time_ours", "models_x_battles=100x10000000", 0.060),
    ("bench_bt.ItemBT.time_ours", "models_x_battles=1000x10000000", 0.300),
    ("bench_bt.ItemBT.time_ours_no_se", "models_x_battles=1000x10000000", 0.300),
    ("bench_bt.Bootstrap.time_ours", "rounds=1000", 1.0),
    ("bench_feature_bt.FeatureBT.time_ours", "n_rows=1000000, solver=default", 0.5),
]

# Hot paths with no peer: their times are listed as they are.
ALONE = ("bench_audit.", "bench_flips.", "bench_winrate.")

# Only these parameters count when pairing ours with a peer.
PAIRING = {"solver": "default"}


def _unquote(v: str) -> str:
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v


def load_results(path: Path) -> tuple[dict, dict]:
    """``{benchmark: {size label: value}}`` and the run's machine parameters."""
    data = json.loads(path.read_text())
    cols = data["result_columns"]
    out = {}
    for name, row in data["results"].items():
        rec = dict(zip(cols, row))
        values, params = rec["result"], rec.get("params") or []
        names = _param_names(path, name)
        combos = list(itertools.product(*params)) if params else [()]
        if values is None:
            continue
        table = {}
        for combo, value in zip(combos, values):
            label = ", ".join(f"{n}={_unquote(v)}" for n, v in zip(names, combo))
            table[label] = value
        out[name] = table
    return out, data.get("params", {})


def _param_names(results_file: Path, name: str) -> list[str]:
    """Parameter names from ``benchmarks.json`` beside the machine folder."""
    index = results_file.parent.parent / "benchmarks.json"
    try:
        return json.loads(index.read_text())[name]["param_names"]
    except (OSError, KeyError, ValueError):
        return [f"p{i}" for i in range(8)]


def _pair_key(label: str) -> str | None:
    """The size part of a label, or None when a pairing parameter differs."""
    parts = []
    for item in label.split(", ") if label else []:
        key, _, value = item.partition("=")
        if key in PAIRING:
            if value != PAIRING[key]:
                return None
            continue
        parts.append(item)
    return ", ".join(parts)


def _missing(v) -> bool:
    return v is None or math.isnan(v)  # asv writes NaN for a skipped combination


def fmt_time(t) -> str:
    if _missing(t):
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if t >= scale:
            return f"{t / scale:.3g} {unit}"
    return f"{t * 1e9:.3g} ns"


def fmt_bytes(b) -> str:
    return "n/a" if _missing(b) else f"{b / 2**20:,.0f} MiB"


def fmt_ratio(ratio: float | None, target: float | None) -> str:
    if ratio is None:
        return "n/a"
    if target is not None and target < 1:
        return f"ours takes {1 / ratio:.2f}x"
    if ratio < 10:
        return f"{ratio:.2f}x"
    return f"{ratio:.1f}x" if ratio < 100 else f"{ratio:,.0f}x"


def verdict(ratio: float | None, target: float | None) -> str:
    if target is None:
        return ""
    if ratio is None:
        return "not measured"
    return "met" if ratio >= target else "**missed**"


def ratio_rows(res: dict) -> list[str]:
    rows = [
        "| hot path | size | ours | peer | peer time | ours faster by | target | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for what, ours_name, peers in COMPARISONS:
        ours = {
            k: v
            for lbl, v in res.get(ours_name, {}).items()
            if (k := _pair_key(lbl)) is not None
        }
        for peer, peer_name, target_at_size, at in peers:
            for label, t_peer in res.get(peer_name, {}).items():
                key = _pair_key(label)
                target = target_at_size if at is None or key == at else None
                t_ours = ours.get(key)
                ok = not (_missing(t_ours) or _missing(t_peer))
                ratio = t_peer / t_ours if ok and t_ours > 0 else None
                tgt = (
                    ""
                    if target is None
                    else (
                        f">= {target:g}x" if target >= 1 else f"ours <= {1 / target:g}x"
                    )
                )
                rows.append(
                    f"| {what} | {key} | {fmt_time(t_ours)} | {peer} | "
                    f"{fmt_time(t_peer)} | "
                    f"{fmt_ratio(ratio, target_at_size)} | {tgt} | "
                    f"{verdict(ratio, target)} |"
                )
    return rows


def absolute_rows(res: dict) -> list[str]:
    rows = ["| benchmark | size | time | limit | |", "|---|---|---|---|---|"]
    for name, label, limit in ABSOLUTE:
        t = res.get(name, {}).get(label)
        ok = "not measured" if _missing(t) else ("met" if t <= limit else "**missed**")
        rows.append(f"| {name} | {label} | {fmt_time(t)} | {fmt_time(limit)} | {ok} |")
    return rows


def listing(res: dict, prefix: str, fmt, only=("",)) -> list[str]:
    rows = ["| benchmark | size | value |", "|---|---|---|"]
    for name in sorted(res):
        if name.split(".")[-1].startswith(prefix) and name.startswith(only):
            for label, v in res[name].items():
                rows.append(f"| {name} | {label} | {fmt(v)} |")
    if len(rows) == 2:
        return ["(none in these results)"]
    return rows


def newest_results(root: Path) -> Path:
    files = [p for p in root.glob("*/*.json") if p.name not in ("machine.json",)]
    if not files:
        sys.exit(f"no asv results under {root}: run `asv run` with saved results first")
    return max(files, key=lambda p: json.loads(p.read_text()).get("date", 0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--results",
        type=Path,
        action="append",
        help="an asv results JSON file; repeat to merge (later files win)",
    )
    ap.add_argument("--root", type=Path, default=HERE / ".asv" / "results")
    args = ap.parse_args(argv)
    paths = args.results or [newest_results(args.root)]
    res, machine = {}, {}
    for path in paths:
        more, machine = load_results(path)
        for name, table in more.items():
            kept = {k: v for k, v in table.items() if not _missing(v)}
            res.setdefault(name, {}).update(kept)
    names = ", ".join(f"`{p.name}`" for p in paths)
    head = (
        f"Results: {names}; machine: {machine.get('cpu', '?')}, "
        f"{machine.get('num_cpu', '?')} cores, "
        f"{int(machine.get('ram', 0)) / 2**30:.0f} GiB, {machine.get('os', '?')}."
    )
    out = [
        head,
        "",
        "### Ours against each peer (median of asv samples)",
        "",
        *ratio_rows(res),
        "",
        "### Absolute targets",
        "",
        *absolute_rows(res),
        "",
        "### Hot paths without a peer",
        "",
        *listing(res, "time_", fmt_time, ALONE),
        "",
        "### Peak memory (input included)",
        "",
        *listing(res, "peakmem_", fmt_bytes),
        "",
        "### Accuracy (track_)",
        "",
        *listing(res, "track_", lambda v: "n/a" if _missing(v) else f"{v:.3g}"),
    ]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
