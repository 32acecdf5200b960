"""The `flex` model's request path without its engine: render (flex_models.render), sampling
settings (flex_models.requests.build_spec), media limits and decoding (flex_models.model.MediaCache,
flex_models.media, model_args audio_scaling) are FlexJudge.plan / FlexJudge.decode themselves, so a
server request is prompted exactly as the in-process `flex` model prompts it."""
from __future__ import annotations

from flex_models.requests import Prepared


class FlexFrontEnd:
    def __init__(self, args, checkpoint):
        from flex_models.backends.vllm_backend import media_limits
        from flex_models.model import FlexJudge

        # FlexJudge's plan/decode read only args, family and limits: an instance without an engine
        # (FlexJudge.__init__ would build one) runs the model's own code for them
        m = object.__new__(FlexJudge)
        m.args, m.checkpoint, m.family = args, checkpoint, checkpoint.family
        m.limits = media_limits(args, checkpoint.family)
        self.model, self.args, self.family, self.limits = m, args, checkpoint.family, m.limits

    def prepare(self, messages: list, where: str, gen_kwargs: dict) -> Prepared:
        from flex_models.model import MediaCache

        planned = self.model.plan(messages, where=where, gen_kwargs=gen_kwargs)
        return self.model.decode(planned, MediaCache(self.args.audio_scaling))

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
