"""Per-request generation settings and prepared (rendered + decoded) requests.

Request settings come from the task's gen_kwargs; the model_args only give defaults
(max_new_tokens, seed). Seed precedence (docs/architecture.md contract 2):
gen_kwargs `seed` > the doc's `flex_seed` > model_args `seed`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from flex_models.errors import FlexJudgeError

log = logging.getLogger("flex_models")

# gen_kwargs keys read here; the rest are ignored with one warning per key.
_KNOWN = {"temperature", "top_p", "top_k", "max_new_tokens", "max_tokens", "seed", "until", "stop",
          "include_stop_str_in_output", "n", "num_return_sequences", "do_sample", "ignore_eos", "min_tokens",
          "min_new_tokens"}
_HARMLESS = {"num_beams", "use_cache", "image_aspect_ratio"}
_warned: set[str] = set()


class GenKwargsError(FlexJudgeError, ValueError):
    """A gen_kwargs value that cannot be honoured."""


@dataclass(frozen=True)
class GenSpec:
    max_new_tokens: int
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = -1  # -1 = off
    seed: int | None = None
    stop: tuple[str, ...] = ()
    include_stop: bool = False
    n: int = 1
    min_new_tokens: int = 0
    ignore_eos: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0

    def sampling_key(self) -> tuple:
        """Requests with equal keys can share one transformers generate call."""
        if self.greedy:
            return ("greedy", self.max_new_tokens, self.n, self.min_new_tokens, self.ignore_eos)
        return ("sample", self.max_new_tokens, self.n, self.min_new_tokens, self.ignore_eos, self.temperature, self.top_p, self.top_k, self.seed)


@dataclass
class Planned:
    """A rendered request whose media are still references (decoded just before generation)."""
    prompt: str
    media: dict  # modality -> [url, ...] as the task passed them
    hints: dict  # modality -> [{fps, max_pixels} ...]
    spec: GenSpec
    where: str = ""


@dataclass
class Prepared:
    prompt: str
    media: dict = field(default_factory=dict)  # image: [PIL], video: [(frames, meta)], audio: [np 16 kHz]
    spec: GenSpec = None
    where: str = ""


def _stops(v) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        v = [v]
    return tuple(s for s in v if isinstance(s, str) and s)


def build_spec(gen_kwargs: dict | None, default_max_new_tokens: int, doc_seed=None,
               default_seed: int | None = None, where: str = "", cap_max_new_tokens: int | None = None) -> GenSpec:
    """gen_kwargs -> GenSpec. `cap_max_new_tokens` (model_args max_new_tokens given explicitly)
    caps the task's max_new_tokens, so a smoke run with max_new_tokens=8 stays short."""
    g = dict(gen_kwargs or {})
    at = f" ({where})" if where else ""
    for k in g:
        if k not in _KNOWN and k not in _HARMLESS and k not in _warned:
            _warned.add(k)
            log.warning("flex: gen_kwargs %r is not used by the flex model (ignored)", k)
    if g.get("num_beams") not in (None, 1, "1"):
        raise GenKwargsError(f"gen_kwargs num_beams={g['num_beams']!r}{at}: beam search is not supported")
    try:
        max_new = g.get("max_new_tokens", g.get("max_tokens"))
        max_new = int(max_new) if max_new is not None else default_max_new_tokens
        if cap_max_new_tokens is not None:
            max_new = min(max_new, cap_max_new_tokens)
        temperature = float(g.get("temperature") or 0.0)
        top_p = float(g["top_p"]) if g.get("top_p") is not None else 1.0
        top_k = int(g["top_k"]) if g.get("top_k") not in (None, 0) else -1
        n = int(g.get("n", g.get("num_return_sequences", 1)) or 1)
    except (TypeError, ValueError) as e:
        raise GenKwargsError(f"gen_kwargs{at}: {e}") from None
    do_sample = g.get("do_sample")
    if do_sample is False or str(do_sample).lower() == "false":
        temperature = 0.0  # transformers semantics: do_sample=False means greedy
    elif do_sample and temperature <= 0.0:
        temperature = 1.0
    if max_new < 1 or n < 1 or not 0 < top_p <= 1:
        raise GenKwargsError(f"gen_kwargs{at}: need max_new_tokens>=1, n>=1, 0<top_p<=1 (got {max_new}, {n}, {top_p})")
    seed = g.get("seed")
    if seed is None:
        seed = doc_seed if doc_seed is not None else default_seed
    return GenSpec(
        max_new_tokens=max_new, temperature=temperature, top_p=top_p, top_k=top_k,
        seed=int(seed) if seed is not None else None,
        stop=_stops(g.get("until", g.get("stop"))),
        include_stop=bool(g.get("include_stop_str_in_output", False)), n=n,
        min_new_tokens=int(g.get("min_tokens", g.get("min_new_tokens", 0)) or 0),
        ignore_eos=str(g.get("ignore_eos", False)).lower() in ("true", "1"),
    )


def cut_at_stop(text: str, stops, include: bool = False) -> str:
    """Cut `text` at the earliest stop string (kept when `include`), as vLLM does."""
    best = None
    for s in stops:
        i = text.find(s)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    if best is None:
        return text
    i, s = best
    return text[: i + len(s)] if include else text[:i]


@dataclass
class Output:
    texts: list  # n samples
    token_ids: list  # n lists of generated token ids
    prompt_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens vLLM's prefix cache served (None: not known)


# Items whose k runs are submitted together: `share_order` puts the requests of one item next to
# each other (lmms-eval may hand them over in any order) and lets each item's first request run
# ahead of its siblings by up to `SHARE_BLOCK` items. The siblings then find that request's prompt
# blocks in vLLM's prefix cache (system prompt + media + shared text computed once: the vision /
# audio encoder is skipped for media inside a cached prefix) and its media in vLLM's multimodal
# processor cache. vLLM caches a block only once it has been computed, so siblings scheduled in the
# same engine step as their first request would compute it again; the lead of SHARE_BLOCK items
# (tens of prompts: more than one step's token budget) keeps them in later steps.
#
# Why not one request with `n` samples: vLLM derives the samples' seeds from one request seed
# (seed + i), which equals the protocol's per-run seeds k only for a base seed of 0 and identical
# prompts; the protocols swap the answer / image order between runs (VL-RewardBench, MJ-Bench), so
# those runs are different prompts, and the journal keys one judgment per (prompt, seed). Separate
# requests keep every seed, prompt and journal entry exactly as the protocol defines them, and the
# prefix cache gives the same prefill saving for the shared part of the prompt.
SHARE_BLOCK = 32


def share_order(keys: list, todo: list[int], block: int = SHARE_BLOCK) -> list[int]:
    """The requests ``todo`` (indices into ``keys``: one item key per request) in submission order:
    items in order of first appearance, in blocks of ``block`` items; in each block the first
    request of every item, then the rest item by item. Stable: requests of one item keep their order."""
    groups: dict = {}
    for i in todo:
        groups.setdefault(keys[i], []).append(i)
    items = list(groups.values())
    out: list[int] = []
    for b in range(0, len(items), block):
        chunk = items[b:b + block]
        out.extend(g[0] for g in chunk)
        out.extend(i for g in chunk for i in g[1:])
    return out
