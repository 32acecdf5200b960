"""Flex-Judge as lmms-eval's LLM judge: provider `API_TYPE=flex` and launcher `name=flex`.

lmms-eval 0.7.3 tasks that score with an LLM judge (mmvet, llava_in_the_wild, mathvista, ...)
get it from `lmms_eval.llm_judge.ProviderFactory` by the `API_TYPE` environment variable.
With flex-judge installed, `API_TYPE=flex` sends those judge calls to an OpenAI-compatible
Flex-Judge server (`flex-judge judge serve`, or vLLM's own server):

  * the task's messages go out unchanged; when they carry no system message, Flex-Judge's
    reasoning system prompt (the protocols' own opening, below) is put first, so the model
    thinks in <think> and answers in <answer> as it was trained (FLEX_JUDGE_SYSTEM overrides;
    FLEX_JUDGE_SYSTEM=none sends none);
  * images the task attaches are sent as data URLs, before the text (the protocols' layout);
  * max_tokens is raised to the protocol's 4096 (a reasoning judge needs room before its
    answer; FLEX_JUDGE_MAX_TOKENS sets it); temperature and top_p are the task's;
  * the reply given to the task is the <answer> part (several joined by a space), the way
    the task expects a bare judgement.

Registration: the `lmms_eval.models` entry point `flex_judge_provider` (pyproject.toml) runs
:func:`lmms_eval_hook` whenever lmms-eval builds its model registry, i.e. in every lmms-eval
run; it registers the provider and the launcher (`--launcher_args name=flex,model=CKPT,...`:
lmms-eval frees the evaluated model, starts the judge server, scores, then stops it).
Settings: FLEX_JUDGE_URL (default http://127.0.0.1:8000/v1), FLEX_JUDGE_API_KEY (sent as
`Authorization: Bearer`; the launcher makes one up for the server it starts when unset),
FLEX_JUDGE_MODEL (default: the server's first model), FLEX_JUDGE_TIMEOUT (s, default 600).
See docs/judge.md and docs/serving.md.
"""
from __future__ import annotations

import base64
import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

log = logging.getLogger("flex_judge")

URL_ENV, MODEL_ENV, SYSTEM_ENV = "FLEX_JUDGE_URL", "FLEX_JUDGE_MODEL", "FLEX_JUDGE_SYSTEM"
MAX_TOKENS_ENV, TIMEOUT_ENV = "FLEX_JUDGE_MAX_TOKENS", "FLEX_JUDGE_TIMEOUT"
KEY_ENV = "FLEX_JUDGE_API_KEY"  # flex_judge.serving.cli.KEY_ENV
DEFAULT_URL = "http://127.0.0.1:8000/v1"


def flex_system_prompt() -> str:
    """The opening every Flex-Judge protocol system prompt shares (how to reason and answer),
    without the benchmark-specific instructions that follow it."""
    from flex_tasks import benchmarks
    from flex_tasks.protocol import TASKS

    return TASKS[benchmarks.judge_defaults()["pair"]].system.split(" Now the user asks")[0]


def system_prompt() -> Optional[str]:
    v = os.environ.get(SYSTEM_ENV)
    if v is None:
        return flex_system_prompt()
    return None if v.strip().lower() in ("", "none") else v


def max_tokens(task_max: Optional[int]) -> int:
    v = os.environ.get(MAX_TOKENS_ENV)
    if v:
        try:
            return int(v)
        except ValueError:
            raise ValueError(f"{MAX_TOKENS_ENV}={v!r}: expected an integer") from None
    from flex_tasks import benchmarks
    from flex_tasks.protocol import TASKS

    return max(int(task_max or 0), TASKS[benchmarks.judge_defaults()["pair"]].max_tokens)


def auth_headers() -> dict:
    key = os.environ.get(KEY_ENV)
    return {"Authorization": f"Bearer {key}"} if key else {}


def image_part(image) -> dict:
    """A PIL image, a path or base64 bytes (lmms-eval's conventions) -> an OpenAI image_url part."""
    if isinstance(image, (bytes, bytearray)):
        data, mime = bytes(image).decode(), "image/jpeg"
    elif isinstance(image, (str, Path)):
        p = Path(image)
        if not p.is_file():
            raise FileNotFoundError(f"judge image not found: {p}")
        data, mime = base64.b64encode(p.read_bytes()).decode(), f"image/{(p.suffix.lstrip('.') or 'png').lower()}"
    else:
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="PNG")
        data, mime = base64.b64encode(buf.getvalue()).decode(), "image/png"
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


def _provider_class():
    from lmms_eval.llm_judge.base import ServerInterface
    from lmms_eval.llm_judge.protocol import Response

    class FlexProvider(ServerInterface):
        """lmms-eval judge provider for a Flex-Judge OpenAI-compatible server (`API_TYPE=flex`)."""

        def __init__(self, config=None):
            super().__init__(config)
            self._model: Optional[str] = None

        @property
        def url(self) -> str:
            return os.environ.get(URL_ENV, DEFAULT_URL).rstrip("/")

        def _get(self, path: str, timeout: float = 5):
            import requests

            r = requests.get(self.url + path, timeout=timeout, headers=auth_headers())
            r.raise_for_status()
            return r.json()

        def is_available(self) -> bool:
            try:
                self._get("/models")
                return True
            except Exception:  # noqa: BLE001
                return False

        def served_model(self) -> str:
            if self._model is None:
                self._model = os.environ.get(MODEL_ENV) or self._get("/models")["data"][0]["id"]
            return self._model

        def prepare_messages(self, request) -> list:
            messages = [dict(m) for m in request.messages]
            sys_prompt = system_prompt()
            if sys_prompt and not any(m.get("role") == "system" for m in messages):
                messages.insert(0, {"role": "system", "content": sys_prompt})
            if request.images:
                i = max(i for i, m in enumerate(messages) if m.get("role") == "user")
                c = messages[i]["content"]
                text = [{"type": "text", "text": c}] if isinstance(c, str) else list(c)
                messages[i]["content"] = [image_part(im) for im in request.images] + text
            return messages

        def payload(self, request) -> dict:
            config = request.config or self.config
            body = {"model": self.served_model(), "messages": self.prepare_messages(request),
                    "temperature": config.temperature, "max_tokens": max_tokens(config.max_tokens)}
            if config.top_p is not None:
                body["top_p"] = config.top_p
            return body

        def evaluate(self, request):
            import requests

            from flex_tasks.parsing import split_answer

            config = request.config or self.config
            timeout = float(os.environ.get(TIMEOUT_ENV, "600"))
            last = None
            for attempt in range(max(1, config.num_retries)):
                try:
                    r = requests.post(self.url + "/chat/completions", json=self.payload(request), timeout=timeout,
                                      headers=auth_headers())
                    if r.status_code in (400, 401, 403, 404, 413):  # the request itself is wrong: retrying cannot help
                        raise ValueError(f"flex judge server rejected the request: {r.text[:500]}")
                    r.raise_for_status()
                    data = r.json()
                    content = data["choices"][0]["message"].get("content") or ""
                    if "<answer>" in content or "</think>" in content:  # e.g. vLLM's server, no reasoning parser
                        content = split_answer(content)[0]
                    return Response(content=content.strip(), model_used=data.get("model", self.served_model()),
                                    usage=data.get("usage"), raw_response=data)
                except ValueError:
                    raise
                except Exception as e:  # noqa: BLE001 - connection / server errors: retry like lmms-eval's providers
                    last = e
                    log.warning("flex judge %s attempt %d/%d failed: %s", self.url, attempt + 1, config.num_retries, e)
                    if attempt + 1 < config.num_retries:
                        time.sleep(config.retry_delay)
            raise ConnectionError(f"flex judge server at {self.url} failed {config.num_retries} times "
                                  f"(is `flex-judge judge serve` running? set {URL_ENV}): {last}")

    return FlexProvider


def _launcher_class():
    from lmms_eval.llm_judge.launcher.base import BaseLauncher

    class FlexLauncher(BaseLauncher):
        """`--launcher_args name=flex,model=CKPT[,port=8000,backend=vllm,<flex model_args>...]`: lmms-eval
        calls launch() after the evaluated model generated (and was told to free its memory) and
        clean() after scoring. Extra keys are the `flex` model_args of the judge."""

        def __init__(self, port=8000, host="127.0.0.1", timeout=1200, model="jongwooko/Flex-VL-7B", backend="auto",
                     log_requests=None, **model_args):
            super().__init__(int(port), host, int(timeout), model)
            self.backend, self.log_requests, self.model_args = backend, log_requests, model_args
            self.process = None

        def command(self) -> list[str]:
            cmd = [sys.executable, "-m", "flex_judge.serving", str(self.model), "--host", self.host,
                   "--port", str(self.port), "--backend", self.backend]
            if self.model_args:
                cmd += ["--model-args", ",".join(f"{k}={v}" for k, v in self.model_args.items())]
            if self.log_requests:
                cmd += ["--log-requests", str(self.log_requests)]
            return cmd

        def launch(self, *args, **kwargs):
            import requests

            want = f"http://{self.host}:{self.port}/v1"
            if os.environ.get(URL_ENV, DEFAULT_URL).rstrip("/") != want:
                log.warning("flex launcher serves %s but %s=%s: the provider will not reach it", want, URL_ENV,
                            os.environ.get(URL_ENV, DEFAULT_URL))
            # the server it starts takes its key from the environment; the provider (this process)
            # sends the same one
            if not os.environ.get(KEY_ENV):
                import secrets

                os.environ[KEY_ENV] = secrets.token_urlsafe(24)
            self.process = subprocess.Popen(self.command(), env=dict(os.environ))
            t0 = time.time()
            while time.time() - t0 < self.timeout:
                if self.process.poll() is not None:
                    raise RuntimeError(f"flex-judge serve exited with code {self.process.returncode}: {' '.join(self.command())}")
                try:
                    if requests.get(f"{want.removesuffix('/v1')}/health", timeout=2).status_code == 200:
                        return
                except requests.RequestException:
                    pass
                time.sleep(1)
            self.clean()
            raise TimeoutError(f"flex-judge serve did not answer on {want} within {self.timeout} s")

        def clean(self):
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
            self.process = None

    return FlexLauncher


_CLASSES: dict = {}


def __getattr__(name: str):
    """FlexProvider / FlexLauncher are built on first use (importing lmms-eval lazily)."""
    if name in ("FlexProvider", "FlexLauncher"):
        if name not in _CLASSES:
            _CLASSES[name] = _provider_class() if name == "FlexProvider" else _launcher_class()
        return _CLASSES[name]
    raise AttributeError(name)


def register() -> None:
    from lmms_eval.llm_judge import ProviderFactory
    from lmms_eval.llm_judge.launcher import AVAILABLE_LAUNCHERS

    ProviderFactory.register_provider("flex", __getattr__("FlexProvider"))
    AVAILABLE_LAUNCHERS["flex"] = "flex_judge.judging.provider.FlexLauncher"


def lmms_eval_hook() -> list:
    """The `lmms_eval.models` entry point: registers the judge, declares no model. Never raises
    (a failing entry point would stop lmms-eval loading the others, the `flex` model included)."""
    try:
        register()
    except Exception as e:  # noqa: BLE001
        log.warning("flex-judge: could not register the lmms-eval judge provider: %s", e)
    return []
