"""Sycophancy under pushback: answer flips from transcripts, the pushback
runner, and reward-model / linear probes.

- :mod:`.extract` reads the answer a reply settles on, and whether it
  apologises or admits a mistake;
- :mod:`.flips` scores items and reports rates with Wilson intervals and
  McNemar / two-proportion comparisons (``rlhf-diag flips``);
- :mod:`.questions` and :mod:`.runner` ask a model, push back and write
  transcripts (``rlhf-diag pushback``);
- :mod:`.probe` asks whether a reward model prefers the sycophantic reply,
  and fits a difference-of-means probe on hidden states (``rlhf-diag probe``);
- :mod:`.hf` holds the torch models: the reward models
  (:class:`~.hf.HFRewardModel`, :class:`~.hf.EmbeddingRewardModel`) and
  hidden states for the linear probe.

torch is needed only by ``runner.TransformersModel`` and the models of
:mod:`.hf`, and is imported when they are used: importing this package, the
flip analysis and the probe statistics never import it.
"""

from __future__ import annotations

from rlhf_diag.sycophancy.extract import (
    Extraction,
    admits_mistake,
    apologises,
    extract_answer,
    extract_choice,
    extract_number,
    parse_options,
)
from rlhf_diag.sycophancy.flips import (
    FlipItem,
    FlipResult,
    analyse_flips,
    analyse_items,
    compare_flips,
    flip_rates,
    load_transcripts,
)
from rlhf_diag.sycophancy.hf import (
    EmbeddingRewardModel,
    HFRewardModel,
    hidden_states,
    pair_hidden_states,
)
from rlhf_diag.sycophancy.probe import (
    LinearProbe,
    ProbePair,
    fit_linear_probe,
    pairs_from_questions,
    pairs_from_transcripts,
    preference_stats,
    probe_reward_model,
    render_hh,
    sample_pairs,
)
from rlhf_diag.sycophancy.questions import Question, load_questions
from rlhf_diag.sycophancy.runner import (
    CallableModel,
    OpenAIChatModel,
    TransformersModel,
    run_pushback,
)

__all__ = [
    "CallableModel",
    "EmbeddingRewardModel",
    "Extraction",
    "FlipItem",
    "FlipResult",
    "HFRewardModel",
    "LinearProbe",
    "OpenAIChatModel",
    "ProbePair",
    "Question",
    "TransformersModel",
    "admits_mistake",
    "analyse_flips",
    "analyse_items",
    "apologises",
    "compare_flips",
    "extract_answer",
    "extract_choice",
    "extract_number",
    "fit_linear_probe",
    "flip_rates",
    "hidden_states",
    "load_questions",
    "load_transcripts",
    "pair_hidden_states",
    "pairs_from_questions",
    "pairs_from_transcripts",
    "parse_options",
    "preference_stats",
    "probe_reward_model",
    "render_hh",
    "run_pushback",
    "sample_pairs",
]
