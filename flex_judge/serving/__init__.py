"""The Flex-Judge judge server (`flex-judge judge serve`): FastAPI + uvicorn over vLLM's async
engine, safe to expose (API key, media policy, size / item / queue limits). docs/serving.md."""
from flex_judge.serving.protocol import ReasoningSplitter, RequestError, gen_kwargs, parse_chat, split_answer

__all__ = ["ReasoningSplitter", "RequestError", "gen_kwargs", "parse_chat", "split_answer"]
