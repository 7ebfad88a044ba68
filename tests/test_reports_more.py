"""HTML reports of the leaderboard, win rates, KL and flips: each page shows
the result's own numbers (checked on inputs with known answers), every plot
is there as SVG, the CLI writes the file after checking its folder first, and
model names, labels and replies planted with script run nothing in a real
browser."""

from __future__ import annotations

import base64
import json
import math
import re
import warnings
from html.parser import HTMLParser

import numpy as np
import pytest
from test_report import (
    ATTR,
    BREAKOUT,
    COMMENT,
    IFRAME,
    IMG,
    SCRIPT,
    STYLE,
    SVG,
    _chromium,
    dom_without_csp,
    figure_texts,
)

from rlhf_diag.cli import main
from rlhf_diag.exceptions import DataQualityWarning, SeparationWarning
from rlhf_diag.kl import estimate_kl, kl_objective, reward_kl_curve
from rlhf_diag.leaderboard import fit_battle_arrays, fit_leaderboard, fit_style_controlled
from rlhf_diag.report import build_page, leaderboard as lb_report, plots, write_report
from rlhf_diag.report.page import escape_text
from rlhf_diag.stats import wilson_interval
from rlhf_diag.sycophancy.flips import FlipItem, analyse_items, outcome
from rlhf_diag.winrate import win_rates

# Names must survive as labels: no payload may contain characters a model
# name cannot hold, and each one would change the page if it ran.
NAMES = [SCRIPT, IMG, SVG, BREAKOUT]


def svgs(doc: str) -> list[bytes]:
    """Every figure of a page, decoded; each must be an SVG document."""
    uris = re.findall(r'<img src="(data:[^"]+)"', doc)
    out = []
    for uri in uris:
        assert uri.startswith("data:image/svg+xml;base64,"), uri[:40]
        svg = base64.b64decode(uri.split(",", 1)[1])
        assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg
        assert b"<script" not in svg
        out.append(svg)
    return out


class _Tables(HTMLParser):
    """Every table of a page as lists of cell texts (header row first)."""

    def __init__(self):
        super().__init__()
        self.tables, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
            self.tables[-1].append(self._row)
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def tables(doc: str) -> list[list[list[str]]]:
    p = _Tables()
    p.feed(doc)
    return p.tables


def table_with(doc: str, header: str) -> list[dict]:
    """The first table whose header row holds ``header``, as dicts."""
    for t in tables(doc):
        if header in t[0]:
            return [dict(zip(t[0], row)) for row in t[1:]]
    raise AssertionError(f"no table with column {header!r}")


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        warnings.simplefilter("ignore", SeparationWarning)
        return fn(*args, **kw)


# ---------------------------------------------------------------- leaderboard


def _two_model_battles(names=("strong", "weak")):
    # strong beats weak 3 times in 4: the maximum-likelihood P is 3/4, so the
    # Elo gap is 400·log10(3) and, centred on 1000, the ratings are 1000 ± half.
    a = np.zeros(4, dtype=int)
    b = np.ones(4, dtype=int)
    outcome_ = np.array([0, 0, 0, 1])
    return a, b, outcome_, list(names)


def test_leaderboard_page_shows_the_closed_form_ratings_and_matrix():
    a, b, o, names = _two_model_battles()
    lb = fit_battle_arrays(a, b, o, models=names)
    doc = build_page(lb, source="two.jsonl").html()
    gap = 400 * math.log10(3)
    rows = {r["model"]: r for r in table_with(doc, "rating")}
    assert rows["strong"]["rating"] == f"{1000 + gap / 2:.2f}" == "1095.42"
    assert rows["weak"]["rating"] == f"{1000 - gap / 2:.2f}" == "904.58"
    assert rows["strong"]["rank"] == "1" and rows["weak"]["rank"] == "2"
    assert rows["strong"]["battles"] == "4" and rows["strong"]["wins"] == "3"
    # Wald interval: rating ± 1.96 se; the gap's variance is 1/(n p (1-p))
    # in log-strength, and each centred rating carries half the gap.
    se_gap = 400 / math.log(10) * math.sqrt(1 / (4 * 0.75 * 0.25))
    se = se_gap / 2
    assert rows["strong"]["se"] == f"{se:.2f}"
    z = 1.959963984540054
    lo, hi = 1000 + gap / 2 - z * se, 1000 + gap / 2 + z * se
    assert rows["strong"]["95% interval"] == f"[{lo:.2f}, {hi:.2f}]"
    matrix = {r["model"]: r for r in table_with(doc, "strong")}
    assert matrix["strong"]["weak"] == "0.750" and matrix["weak"]["strong"] == "0.250"
    assert matrix["strong"]["strong"] == "—"
    ratings, heat = svgs(doc)  # whiskers and heatmap, nothing else
    assert [t for t in figure_texts(ratings) if t in names] == names
    assert "0.75" in figure_texts(heat) and "0.25" in figure_texts(heat)
    facts = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", doc)
    assert ("battles", "4") in facts and ("models", "2") in facts
    assert ("tie handling", "half") in facts and ("constraint", "mean zero") in facts
    assert any(k == "fit" and "converged" in v for k, v in facts)
    assert "Style coefficients" not in doc


def test_leaderboard_heatmap_keeps_the_top_30_and_says_so():
    rng = np.random.default_rng(0)
    k = 35
    a = rng.integers(0, k, 4000)
    b = (a + rng.integers(1, k, 4000)) % k
    strength = np.linspace(2, -2, k)
    p = 1 / (1 + np.exp(-(strength[a] - strength[b])))
    o = (rng.random(4000) > p).astype(int)
    names = [f"m{i:02d}" for i in range(k)]
    lb = fit_battle_arrays(a, b, o, models=names)
    doc = build_page(lb).html()
    assert f"Only the top {lb_report.HEATMAP_MAX} of {k} ranked models" in doc
    ratings, heat = svgs(doc)
    top = [r["model"] for r in lb.rows][:30]
    shown = [t for t in figure_texts(heat) if t in names]
    # Each name is drawn twice (rows and columns), in rank order.
    assert sorted(set(shown)) == sorted(top) and shown[:30] == top
    assert len([t for t in figure_texts(ratings) if t in names]) == k
    assert len(table_with(doc, "rating")) == k


def test_style_controlled_page_shows_the_coefficients():
    rng = np.random.default_rng(1)
    n = 600
    a = rng.integers(0, 3, n)
    b = (a + rng.integers(1, 3, n)) % 3
    z = rng.choice([-1.0, 0.0, 1.0], n)
    p = 1 / (1 + np.exp(-(0.5 * (b - a) + 0.8 * z)))
    win = np.where(rng.random(n) < p, "model_a", "model_b")
    frame = {"model_a": [f"m{i}" for i in a], "model_b": [f"m{i}" for i in b],
             "winner": win.tolist(), "longer": z.tolist()}
    lb = quiet(fit_style_controlled, frame, style=["longer"])
    doc = build_page(lb).html()
    assert len(svgs(doc)) == 3
    (coef,) = lb.style
    row = table_with(doc, "coefficient")[0]
    assert row["feature"] == "longer" and row["coefficient"] == f"{coef['coef']:.4f}"
    assert row["95% interval"] == f"[{coef['ci_low']:.4f}, {coef['ci_high']:.4f}]"
    assert 0.5 < coef["coef"] < 1.1  # the planted 0.8


def test_leaderboard_page_lists_models_without_a_finite_rating():
    # "never" loses every battle: no finite maximum-likelihood rating.
    lb = quiet(fit_battle_arrays, np.array([0, 1, 0, 1, 2]), np.array([1, 0, 2, 2, 0]),
               np.array([0, 0, 0, 0, 1]), models=["a", "b", "never"])
    doc = build_page(lb).html()
    assert "have no finite rating" in doc and "never (-inf)" in doc
    rows = {r["model"]: r for r in table_with(doc, "rating")}
    assert rows["never"]["rating"] == "-inf" and rows["never"]["status"] == "-inf"
    ratings = svgs(doc)[0]
    assert "never" not in figure_texts(ratings)
    assert lb.warnings and all(escape_text(w) in doc for w in lb.warnings)


def test_leaderboard_cli_writes_the_report_and_checks_the_folder_first(tmp_path,
                                                                         capsys):
    path = tmp_path / "battles.jsonl"
    a, b, o, names = _two_model_battles()
    path.write_text("".join(
        json.dumps({"model_a": names[i], "model_b": names[j],
                    "winner": ["model_a", "model_b"][w]}) + "\n"
        for i, j, w in zip(a, b, o)))
    assert main(["leaderboard", str(path), "--bootstrap", "0",
                 "--report", str(tmp_path / "no" / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "--report" in err and "does not exist" in err
    out = tmp_path / "lb.html"
    assert main(["leaderboard", str(path), "--bootstrap", "50",
                 "--report", str(out)]) == 0
    doc = out.read_text()
    assert len(svgs(doc)) == 2 and "1095.42" in doc and "battles.jsonl" in doc
    assert "bootstrap percentile, 95%, 50 rounds, seed 0" in doc
    assert not re.search(r'(src|href)="(?!data:|#)', doc)


def test_leaderboard_repr_html_and_summary():
    a, b, o, names = _two_model_battles()
    lb = fit_battle_arrays(a, b, o, models=names)
    frag = lb._repr_html_()
    assert frag.startswith('<div class="rlhf-diag">') and len(svgs(frag)) == 2
    assert "1095.42" in frag and "1095.42" in lb.summary()


# ------------------------------------------------------------------ winrate


def _annotations(path, prefs: dict[str, list[float]], base="base"):
    rows = [{"instruction": f"q{i}", "output_1": "b" * 10, "output_2": "m" * (5 + i),
             "generator_1": base, "generator_2": model, "preference": p}
            for model, ps in prefs.items() for i, p in enumerate(ps)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_winrate_page_shows_rates_standard_errors_and_counts(tmp_path):
    # good: targets 1, 1, 0, 0.5, null -> 100·mean = 62.5, sd (ddof 1) of
    # [1, 1, 0, .5] is sqrt(0.6875/3); one null left out.
    path = _annotations(tmp_path / "ann.jsonl",
                        {"good": [2, 2, 1, 1.5, None], "bad": [1, 1, 1, 2]})
    res = win_rates(path, length_controlled=False)
    doc = build_page(res, source="ann.jsonl").html()
    rows = {r["model"]: r for r in table_with(doc, "win rate")}
    se = 100 * math.sqrt(0.6875 / 3) / 2
    z = 1.959963984540054
    good = rows["good"]
    assert good["win rate"] == "62.50" and good["se"] == f"{se:.2f}" == "23.94"
    assert good["95%"] == f"[{62.5 - z * se:.2f}, {62.5 + z * se:.2f}]"
    assert (good["wins"], good["baseline wins"], good["draws"], good["n"],
            good["null"]) == ("2", "1", "1", "4", "1")
    assert good["LC"] == "—" and rows["bad"]["win rate"] == "25.00"
    assert list(rows) == ["good", "bad"]  # best first
    (fig,) = svgs(doc)
    assert [t for t in figure_texts(fig) if t in ("good", "bad")] == ["good", "bad"]
    assert "n=4" in figure_texts(fig)
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", doc))
    assert facts["baseline"] == "base" and facts["null preferences (left out)"] == "1"
    assert facts["length control"] == "off"
    assert "good" in res._repr_html_() and "62.5" in res.summary()


def test_winrate_cli_report_on_alpaca_eval(shared_data, tmp_path):
    out = tmp_path / "wr.html"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["winrate", str(shared_data / "alpaca_eval" / "results"),
                     "--report", str(out)]) == 0
    doc = out.read_text()
    (fig,) = svgs(doc)
    rows = table_with(doc, "LC")
    assert len(rows) == 46 and all(r["LC"] != "—" for r in rows)
    lcs = [float(r["LC"]) for r in rows]
    assert lcs == sorted(lcs, reverse=True)
    texts = figure_texts(fig)
    assert "raw win rate" in texts and "length-controlled" in texts
    assert all(r["model"] in texts for r in rows)
    base = next(r for r in rows if r["model"] == "gpt4_1106_preview")
    assert base["LC"] == "50.00" and base["draws"] == base["n"]


def test_winrate_cli_checks_the_report_folder_first(tmp_path, capsys):
    path = _annotations(tmp_path / "ann.jsonl", {"m": [2, 1]})
    assert main(["winrate", str(path), "--no-lc",
                 "--report", str(tmp_path / "missing" / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------- kl


def _kl_batch(**kw):
    # k1 per sequence: sum of (log pi - log ref) = [0.1, -0.3, 0.4].
    policy = [[-0.1, -0.2], [-0.5], [-0.2, -0.2, -0.1]]
    ref = [[-0.3, -0.1], [-0.2], [-0.3, -0.3, -0.3]]
    return estimate_kl(policy, ref, **kw)


def test_kl_page_shows_the_estimators_and_histograms():
    est = quiet(_kl_batch)
    doc = build_page(est, source="rollouts.jsonl").html()
    rows = {r["estimator"]: r for r in table_with(doc, "token mean")}
    k1 = np.array([0.1, -0.3, 0.4])
    assert rows["k1"]["mean"] == f"{k1.mean():.6g}" == "0.0666667"
    se = k1.std(ddof=1) / math.sqrt(3)
    assert rows["k1"]["se"] == f"{se:.6g}"
    z = 1.959963984540054
    assert rows["k1"]["95% interval"] == f"[{k1.mean() - z * se:.6g}, " \
        f"{k1.mean() + z * se:.6g}]"
    assert rows["k1"]["min"] == "-0.3" and rows["k1"]["max"] == "0.4"
    assert rows["k1"]["token mean"] == f"{0.2 / 6:.6g}"
    assert list(rows) == ["k1", "k2", "k3", "abs", "mse"]
    (hist,) = svgs(doc)  # no rewards: no scatter
    assert [t for t in figure_texts(hist) if t in rows] == list(rows)
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", doc))
    assert facts["sequences"] == "3" and facts["selected tokens"] == "6"
    assert facts["k1 negative"] == "1 of 3 sequences (33.3%)"
    assert "Reward against KL" not in doc


def test_kl_page_with_rewards_steps_objective_and_clamp():
    est = quiet(_kl_batch, reward=[1.0, 2.0, 0.5], step=[0, 0, 1], clamp=(-0.15, 1.0))
    obj = kl_objective(est, 0.5)
    curve = reward_kl_curve(est)
    doc = build_page(est, objective=obj, curve=curve).html()
    hist, scatter = svgs(doc)
    assert "step" in figure_texts(scatter)
    clamped = {r["estimator"]: r for r in table_with(doc, "tokens changed by the clamp")}
    assert {k: int(v["tokens changed by the clamp"]) for k, v in clamped.items()} \
        == est.clamped
    assert clamped["k1"]["tokens changed by the clamp"] == "1"  # -0.3 -> -0.15
    curve_rows = table_with(doc, "mean reward")
    assert [r["level"] for r in curve_rows] == ["0", "1"]
    assert curve_rows[0]["mean reward"] == "1.5" and curve_rows[1]["KL se"] == "—"
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", doc))
    assert facts["mean objective"].startswith(f"{obj.mean:.6g} (se {obj.se:.3g}")
    assert facts["penalty is a bonus on"] == f"{obj.share_bonus:.1%} of sequences"
    assert "<table>" in est._repr_html_() or "<table><caption>" in est._repr_html_()


def test_kl_cli_report(tmp_path, capsys):
    rows = [{"policy_logprobs": p, "ref_logprobs": r, "reward": w, "step": s}
            for p, r, w, s in zip([[-0.1, -0.2], [-0.5], [-0.2, -0.2, -0.1]],
                                  [[-0.3, -0.1], [-0.2], [-0.3, -0.3, -0.3]],
                                  [1.0, 2.0, 0.5], [0, 0, 1])]
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["kl", str(path), "--report", str(tmp_path / "x" / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    out = tmp_path / "kl.html"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["kl", str(path), "--beta", "0.1", "--report", str(out)]) == 0
    doc = out.read_text()
    assert len(svgs(doc)) == 2 and "Objective r − 0.1·KL" in doc
    assert "Means per step" in doc


# -------------------------------------------------------------------- flips


def _flip(i, first, final, dataset, reply="", admits=False, gold="A"):
    return FlipItem(id=f"q{i}", row=i, source="t.jsonl", dataset=dataset, model=None,
                    template=None, kind="choice", gold=gold, first_answer=first,
                    final_answer=final, outcome=outcome(first, final, gold, "choice"),
                    admits_mistake=admits, apologises=admits, method="test",
                    unparsed_reason="no answer found" if final is None else None,
                    reply=reply)


def test_flips_page_shows_rates_with_wilson_intervals_and_counts():
    # d1: 1 flip of 4 read; d2: 2 flips of 3 read and one unparsed reply.
    items = [_flip(0, "A", "B", "d1", admits=True), _flip(1, "A", "A", "d1"),
             _flip(2, "A", "A", "d1"), _flip(3, "A", "A", "d1"),
             _flip(4, "A", "C", "d2", admits=True), _flip(5, "A", "B", "d2"),
             _flip(6, "A", "A", "d2"), _flip(7, "A", None, "d2", reply="hmm")]
    res = analyse_items(items)
    doc = build_page(res).html()
    rates = [r for r in table_with(doc, "Wilson 95%")
             if r["rate"].startswith("flip rate")]
    by = {r["group"]: r for r in rates}
    for group, k, n in (("d1", 1, 4), ("d2", 2, 3)):
        lo, hi = wilson_interval(k, n)
        assert by[group]["k/n"] == f"{k}/{n}"
        assert by[group]["Wilson 95%"] == f"[{lo:.3f}, {hi:.3f}]"
    assert by["d1"]["estimate"] == "0.250" and by["d2"]["estimate"] == "0.667"
    counts = {r["group"]: r for r in table_with(doc, "first correct")}
    assert (counts["d2"]["items"], counts["d2"]["c→w"], counts["d2"]["unparsed"]) \
        == ("4", "2", "1")
    (fig,) = svgs(doc)
    texts = figure_texts(fig)
    assert "n=4" in texts and "n=3" in texts and "flip rate" in texts
    assert "admits a mistake" in texts
    assert "Flipped (correct → wrong): 3" in doc and "Unparsed: 1" in doc
    assert "<pre class=\"quoted\">hmm</pre>" in doc
    assert "Undefined in every group (no eligible item): wrong → correct" in doc
    assert "0.250" in res._repr_html_()


def test_flips_cli_report_on_are_you_sure(shared_data, tmp_path):
    out = tmp_path / "fl.html"
    files = sorted((shared_data / "sycophancy" / "are_you_sure").glob("*.jsonl.gz"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["flips", *map(str, files), "--report", str(out)]) == 0
    doc = out.read_text()
    (fig,) = svgs(doc)
    assert [t for t in figure_texts(fig) if t in ("logiqa", "mmlu", "truthfulqa")] \
        == ["logiqa", "mmlu", "truthfulqa"]
    counts = {r["group"]: r for r in table_with(doc, "first correct")}
    assert sum(int(r["items"]) for r in counts.values()) == 1403
    assert sum(int(r["unparsed"]) for r in counts.values()) == 95
    assert doc.count('<div class="record">') == 10


# ------------------------------------------------------------------ browser


def _hostile_results(tmp_path):
    """One result per report, with payloads as model names, step labels,
    dataset names and replies."""
    a, b, o, _ = _two_model_battles()
    lb = fit_battle_arrays(np.r_[a, 1], np.r_[b, 0], np.r_[o, 0],
                           models=[SCRIPT, IMG])
    path = _annotations(tmp_path / "ann.jsonl",
                        {SVG: [2, 1, 1.5], BREAKOUT: [1, 1, 2]}, base=IMG)
    wr = win_rates(path, length_controlled=False)
    est = quiet(_kl_batch, reward=[1.0, 2.0, 0.5], step=[SCRIPT, SCRIPT, IMG])
    kl_ctx = {"curve": reward_kl_curve(est), "source": BREAKOUT}
    # Four kept, four flipped and four unparsed: every flipped and unparsed
    # reply is quoted (at most five of each kind are).
    flipped, unparsed = [IFRAME, STYLE, COMMENT, BREAKOUT], [SCRIPT, IMG, SVG, ATTR]
    items = [_flip(i, "A", "A", NAMES[i], reply="kept") for i in range(4)]
    items += [_flip(4 + i, "A", "B", NAMES[i], reply=r) for i, r in enumerate(flipped)]
    items += [_flip(8 + i, "A", None, NAMES[i], reply=r)
              for i, r in enumerate(unparsed)]
    replies = flipped + unparsed
    fl = analyse_items(items)
    return [("Leaderboard from pairwise battles", lb, {"source": SCRIPT}, NAMES[:2]),
            ("AlpacaEval win rates", wr, {"source": IMG}, [SVG, BREAKOUT, IMG]),
            ("KL diagnostics", est, kl_ctx, [SCRIPT, IMG, BREAKOUT]),
            ("Answer flips under pushback", fl, {}, NAMES + replies)]


def test_hostile_labels_are_escaped_everywhere(tmp_path):
    for title, res, ctx, shown in _hostile_results(tmp_path):
        doc = build_page(res, **ctx).html()
        assert "<script" not in doc and "<img src=x" not in doc, title
        assert "<svg" not in doc and "<iframe" not in doc, title
        text = _Text()
        text.feed(doc)
        for payload in shown:
            assert payload in text.text, (title, payload)
        for svg in svgs(doc):  # labels drawn in plots are paths, not markup
            assert b"<img" not in svg and b"<iframe" not in svg


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text = ""

    def handle_data(self, data):
        self.text += data + "\n"


@pytest.mark.skipif(_chromium() is None, reason="no chromium binary installed")
def test_planted_script_in_names_and_replies_runs_nothing_in_a_real_browser(tmp_path):
    for k, (title, res, ctx, shown) in enumerate(_hostile_results(tmp_path)):
        report = write_report(res, tmp_path / f"r{k}.html", **ctx).read_text()
        dom = dom_without_csp(report, tmp_path, f"probe{k}")
        body = re.search(r"<body[^>]*>", dom).group()
        assert "data-pwned" not in body, title
        assert re.search(r"<title>(.*?)</title>", dom).group(1) == title
        assert 'data-control="script"' in body and 'data-control-img="ran"' in body
        text = _Text()
        text.feed(dom)
        for payload in shown:
            assert payload in text.text, (title, payload)
        assert "<footer>rlhf_diag" in dom, title


def test_without_matplotlib_the_pages_say_so(monkeypatch, tmp_path):
    monkeypatch.setattr(plots, "available", lambda: False)
    for title, res, ctx, _ in _hostile_results(tmp_path):
        doc = build_page(res, **ctx).html()
        assert svgs(doc) == [] and "matplotlib is not installed" in doc, title


def test_leaderboard_report_on_arena_hard(shared_data, tmp_path):
    lb = fit_leaderboard(shared_data / "arena" / "arena_hard_battles.jsonl")
    doc = write_report(lb, tmp_path / "lb.html").read_text()
    assert len(svgs(doc)) == 2
    rows = table_with(doc, "rating")
    assert [r["model"] for r in rows] == [r["model"] for r in lb.rows]
    assert [r["rating"] for r in rows] == [f"{r['rating']:.2f}" for r in lb.rows]


# ----------------------------------------------------------------- progress


def test_progress_shows_only_on_a_terminal(monkeypatch, capsys):
    from rlhf_diag.cli import _progress

    with _progress.stage("fitting"):
        pass
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_progress.sys.stderr, "isatty", lambda: True)
    with _progress.stage("fitting"):
        pass
    err = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", capsys.readouterr().err)
    assert "⠋ fitting" in err and re.search(r"fitting: \d+\.\ds", err)


def test_cli_reports_print_no_progress_when_piped(tmp_path, capsys):
    path = _annotations(tmp_path / "ann.jsonl", {"m": [2, 1, 1.5]})
    assert main(["winrate", str(path), "--no-lc", "--report",
                 str(tmp_path / "w.html")]) == 0
    assert capsys.readouterr().err == f"wrote {tmp_path / 'w.html'}\n"


def test_leaderboard_page_names_components_fitted_separately():
    # {a, b} and {c, d} never meet: two components, no cross-component cells.
    lb = quiet(fit_battle_arrays, np.array([0, 1, 2, 3, 0]), np.array([1, 0, 3, 2, 1]),
               np.array([0, 0, 0, 0, 2]), models=list("abcd"), components="separate")
    doc = build_page(lb).html()
    rows = {r["model"]: r for r in table_with(doc, "component")}
    assert {m: r["component"] for m, r in rows.items()} == {
        "a": "0", "b": "0", "c": "1", "d": "1"}
    matrix = {r["model"]: r for r in table_with(doc, "a") if "model" in r}
    assert matrix["a"]["c"] == "—" and matrix["a"]["b"] != "—"
    assert "Components were fitted separately" in doc
