"""Chat messages -> the family's prompt string, written by hand (no chat template).

Layout (protocols.json `_about`):
  <|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{prefix}
Each media part of a message becomes its family's placeholder, in place, and its `url` is
collected in order per modality (decoding is flex_models.media's job).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flex_models.errors import FlexJudgeError

# One placeholder table per family; a missing modality is not accepted by that family.
PLACEHOLDERS = {
    "vl": {
        "image": "<|vision_start|><|image_pad|><|vision_end|>",
        "video": "<|vision_start|><|video_pad|><|vision_end|>",
    },
    "omni": {
        "image": "<|vision_start|><|IMAGE|><|vision_end|>",
        "video": "<|vision_start|><|VIDEO|><|vision_end|>",
        "audio": "<|audio_bos|><|AUDIO|><|audio_eos|>",
    },
}
FAMILY_NAMES = {"vl": "Qwen2.5-VL (Flex-VL-7B)", "omni": "Qwen2.5-Omni (Flex-Omni-7B)"}
ROLES = ("system", "user", "assistant")


class RenderError(FlexJudgeError, ValueError):
    """Messages that the family cannot render (unknown part, unsupported modality, bad role)."""


@dataclass
class Rendered:
    prompt: str
    media: dict = field(default_factory=dict)  # modality -> [url, ...] in prompt order
    hints: dict = field(default_factory=dict)  # modality -> [part extras, ...] e.g. video fps

    def count(self, modality: str) -> int:
        return len(self.media.get(modality, ()))


def _parts(content):
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content


def _as_dict(obj):
    if isinstance(obj, dict):
        return obj
    dump = getattr(obj, "model_dump", None)  # lmms_eval.protocol pydantic objects
    if dump is not None:
        return dump()
    raise RenderError(f"message part of type {type(obj).__name__} is not a dict")


def render(messages, family: str, assistant_prefix: str = "", where: str = "") -> Rendered:
    """Render lmms-eval chat messages for `family` ("vl" | "omni").

    `where` names the document (e.g. "task nisqa doc 3") in error messages.
    """
    if family not in PLACEHOLDERS:
        raise RenderError(f"unknown family {family!r}; allowed: {', '.join(PLACEHOLDERS)}")
    table = PLACEHOLDERS[family]
    at = f" ({where})" if where else ""
    out: list[str] = []
    media: dict = {}
    hints: dict = {}
    for m in messages:
        m = _as_dict(m)
        role = m.get("role")
        if role not in ROLES:
            raise RenderError(f"message role {role!r}{at}; allowed: {', '.join(ROLES)}")
        out.append(f"<|im_start|>{role}\n")
        for part in _parts(m.get("content", [])):
            part = _as_dict(part)
            kind = part.get("type")
            if kind == "text":
                out.append(part["text"])
                continue
            if kind not in ("image", "video", "audio"):
                raise RenderError(f"message part type {kind!r}{at}; allowed: text, image, video, audio")
            if kind not in table:
                raise RenderError(
                    f"{kind} input{at} cannot be sent to a {FAMILY_NAMES[family]} checkpoint; "
                    f"it accepts {', '.join(table)}. Use a Qwen2.5-Omni checkpoint (e.g. Flex-Omni-7B)."
                )
            url = part.get("url", part.get(kind))
            if url is None:
                raise RenderError(f"{kind} part{at} has no 'url'")
            out.append(table[kind])
            media.setdefault(kind, []).append(url)
            extra = {k: v for k, v in part.items() if k not in ("type", "url", kind) and v is not None}
            hints.setdefault(kind, []).append(extra)
        out.append("<|im_end|>\n")
    out.append("<|im_start|>assistant\n")
    out.append(assistant_prefix)
    return Rendered(prompt="".join(out), media=media, hints=hints)
