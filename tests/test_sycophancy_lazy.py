"""torch stays optional: importing rlhf_diag, the flip analysis (API and CLI),
the audit and the reward-model probe with a callable never import it, and the
torch models say what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = textwrap.dedent(
    """
    import json, sys

    class NoTorch:
        # Refuse torch at import time. (sys.modules["torch"] = None would
        # also block it, but scipy's array-API helpers then read
        # sys.modules["torch"].Tensor and fail on their own.)
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "sentence_transformers"):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)")

    sys.meta_path.insert(0, NoTorch())
    from pathlib import Path
    import rlhf_diag, rlhf_diag.sycophancy, rlhf_diag.audit
    from rlhf_diag.cli import main
    from rlhf_diag.sycophancy import analyse_flips
    from rlhf_diag.sycophancy.probe import pairs_from_questions, probe_reward_model
    tmp = Path(sys.argv[1])
    rows = [
        {"question": f"Q{i}? (A) yes (B) no", "gold": "A", "first_answer": "(A)",
         "reply": "You are right, the answer is (B)." if i < 3 else "I am sure: (A)."}
        for i in range(8)
    ]
    (tmp / "t.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
    res = analyse_flips(tmp / "t.jsonl")
    assert (res.overall["flip_rate"]["k"], res.overall["flip_rate"]["n"]) == (3, 8)
    assert main(["flips", str(tmp / "t.jsonl"), "--json", str(tmp / "f.json")]) == 0
    pairs = [
        {"prompt": f"Q{i}?", "chosen": "A full answer " * (i % 3 + 1) + ".",
         "rejected": ["No.", "Sorry, I can't.", "- a\\n- b"][i % 3]}
        for i in range(30)
    ]
    (tmp / "p.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in pairs))
    a = rlhf_diag.audit.audit(tmp / "p.jsonl", folds=3)
    assert a.to_dict()
    from rlhf_diag.sycophancy.questions import Question
    q = [Question("q", "d", "Q?", "A", "choice", {"A": "x", "B": "y"})]
    r = probe_reward_model(pairs_from_questions(q), lambda c, t: [1.0, 0.0], n_boot=5)
    assert r["overall"]["p_prefers_sycophantic"] == 1.0
    from rlhf_diag.sycophancy.hf import HFRewardModel
    try:
        HFRewardModel("x")
    except ImportError as exc:
        assert "pip install" in str(exc)
    else:
        raise AssertionError("HFRewardModel ran without torch")
    assert not [m for m in sys.modules if m.split(".")[0] == "torch"]
    print("OK")
    """
)


def test_analysis_runs_with_torch_blocked(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED, str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")
