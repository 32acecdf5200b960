"""The `flex` model for lm-eval 0.4.13 (text-only judging). Importing this module registers it.

lm-eval has no model entry points, so run it through `python -m flex_models.lm_eval_cli ...`
(or `flex-judge lm-eval ...`), which imports this module first. Same model_args and backends
as the lmms-eval model. Contexts that are already chat-rendered (start with `<|im_start|>`,
as the flex_judgelm task writes them) are used verbatim; with `--apply_chat_template` the
messages are rendered by flex_models.render (system prompt = lm-eval's description).
"""
from __future__ import annotations

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from flex_models.args import parse_args
from flex_models.backends import make_backend
from flex_models.family import load_checkpoint
from flex_models.render import render
from flex_models.requests import Prepared, build_spec

CHAT_START = "<|im_start|>"


@register_model("flex", "flex_judge")
class FlexJudgeLM(LM):
    def __init__(self, pretrained: str | None = None, batch_size=1, **kwargs):
        super().__init__()
        self.args = parse_args(dict(kwargs, pretrained=pretrained, batch_size=batch_size))
        if self.args.data_parallel_size > 1:
            raise ValueError("model_args data_parallel_size>1 is supported by the lmms-eval model only")
        self.checkpoint = load_checkpoint(self.args.pretrained)
        self.family = self.checkpoint.family
        self.backend = make_backend(self.args, self.checkpoint)

    # lm-eval calls these for --apply_chat_template
    @property
    def tokenizer_name(self) -> str:
        return self.args.pretrained.replace("/", "__")

    def chat_template(self, chat_template=False) -> str:
        return "flex-hand-written-qwen-layout"

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        if len(chat_history) == 1 and str(chat_history[0].get("content", "")).startswith(CHAT_START):
            return chat_history[0]["content"]
        return render(chat_history, self.family, self.args.assistant_prefix).prompt

    def _prompt(self, context: str) -> str:
        if context.startswith(CHAT_START):
            return context
        return render([{"role": "user", "content": context}], self.family, self.args.assistant_prefix).prompt

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        prepared = []
        for i, req in enumerate(tqdm(requests, desc="flex: preparing", disable=disable_tqdm or len(requests) < 2)):
            context, gen_kwargs = req.args[0], dict(req.args[1] or {})
            if "max_gen_toks" in gen_kwargs:
                gen_kwargs.setdefault("max_new_tokens", gen_kwargs.pop("max_gen_toks"))
            where = f"task {getattr(req, 'task_name', '?')} doc {getattr(req, 'doc_id', i)}"
            spec = build_spec(gen_kwargs, self.args.max_new_tokens, None, self.args.seed, where,
                              cap_max_new_tokens=self.args.max_new_tokens_cap)
            prepared.append(Prepared(prompt=self._prompt(context), spec=spec, where=where))
        outputs = self.backend.generate(prepared, progress=not disable_tqdm)
        texts = [o.texts[0] for o in outputs]
        for req, text in zip(requests, texts):
            self.cache_hook.add_partial("generate_until", req.args, text)
        return texts

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("the flex model is a generative judge: loglikelihood tasks are not supported")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError("the flex model is a generative judge: loglikelihood tasks are not supported")
