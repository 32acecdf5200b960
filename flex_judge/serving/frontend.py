"""The `flex` model's request path without its engine: render (flex_models.render), sampling
settings (flex_models.requests.build_spec), media limits and decoding (flex_models.media, model_args
audio_scaling) are flex_models.planner.RequestPlanner, the same object the `flex` model plans with, so
a server request is prompted exactly as the in-process `flex` model prompts it."""
from __future__ import annotations

from flex_models.requests import Prepared


class FlexFrontEnd:
    def __init__(self, args, checkpoint):
        from flex_models.planner import RequestPlanner

        self.planner = RequestPlanner(args, checkpoint.family)
        self.args, self.family, self.limits = args, checkpoint.family, self.planner.limits

    def plan(self, messages: list, where: str, gen_kwargs: dict):
        """Render + sampling settings; media still undecoded (the server checks its limits first)."""
        return self.planner.plan(messages, where=where, gen_kwargs=gen_kwargs)

    def decode(self, planned) -> Prepared:
        return self.planner.decode(planned)

    def prepare(self, messages: list, where: str, gen_kwargs: dict) -> Prepared:
        return self.decode(self.plan(messages, where, gen_kwargs))

    @staticmethod
    def safe_message(e: Exception) -> str:
        """A client-safe message for a request the model refused: render and sampling errors are
        the model's own messages (no paths in them); media errors say only which kind failed, as
        the loaders' messages name files."""
        from flex_models.media import MediaError
        from flex_models.render import RenderError
        from flex_models.requests import GenKwargsError

        if isinstance(e, (RenderError, GenKwargsError)):
            return str(e)[:500]
        if isinstance(e, MediaError):
            msg = str(e)
            if "limit_mm_per_prompt" in msg:
                return msg[:300]
            kind = next((k for k in ("image", "audio", "video") if msg.startswith(f"cannot load {k}")), "media")
            return f"a {kind} item of the request cannot be decoded"
        return f"the request cannot be prepared ({type(e).__name__})"
