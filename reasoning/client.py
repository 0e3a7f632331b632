"""A small async client for OpenAI-compatible chat servers (vLLM's in production).

Structured output uses ``response_format={"type": "json_schema", ...}`` (the current vLLM API;
the removed ``guided_json`` field is never sent). Reasoning models (Qwen3) get
``chat_template_kwargs: {"enable_thinking": false}`` and any ``<think>`` block is stripped from
the reply (a server started with ``--reasoning-parser`` moves it to ``reasoning_content``, which
is never read).

Errors are typed, so a report says what happened rather than "unavailable"::

    LLMError                        radagent.errors root of the LLM leaves
    +-- LLMUnavailableError         the server could not be reached (connection refused, DNS)
    +-- LLMTimeoutError             no answer within timeout_s
    +-- LLMHTTPError                the server answered with an HTTP error status
    |   +-- LLMContextOverflowError prompt + max_tokens exceed the served context (checked before
    |                               sending, or a 400 naming the context length)
    +-- LLMTruncatedError           the reply stopped at max_tokens (finish_reason "length")
    +-- LLMReplyError               the reply is not an OpenAI chat completion
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from radagent.errors import RadagentError

if TYPE_CHECKING:  # httpx (~0.2 s to import) is loaded by the requests themselves, not by the template path
    import httpx

DEFAULT_TIMEOUT_S = 120.0  # per request: a 2,000-token JSON draft takes ~60 s at 30 tokens/s on a small GPU
# When the server has no /tokenize route, the prompt is estimated at one token per this many
# characters (English and JSON with BPE tokenizers average 3-4; 2.5 errs towards overflow).
CHARS_PER_TOKEN_ESTIMATE = 2.5


class LLMError(RadagentError):
    """The LLM server could not be reached or answered with an error."""

    kind = "error"


class LLMUnavailableError(LLMError):
    """The server could not be reached (connection refused, unknown host, TLS)."""

    kind = "unavailable"


class LLMTimeoutError(LLMError):
    """The LLM server did not answer within the timeout (a stalled or overloaded server)."""

    kind = "timeout"

    def __init__(self, message: str, timeout_s: float) -> None:
        super().__init__(message)
        self.timeout_s = timeout_s


class LLMHTTPError(LLMError):
    """The server answered with an HTTP error status."""

    kind = "http_error"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class LLMContextOverflowError(LLMHTTPError):
    """The prompt plus max_tokens do not fit the served context window."""

    kind = "context_overflow"

    def __init__(self, message: str, prompt_tokens: int | None = None, max_tokens: int | None = None,
                 context_tokens: int | None = None, status: int = 400) -> None:
        super().__init__(message, status)
        self.prompt_tokens, self.max_tokens, self.context_tokens = prompt_tokens, max_tokens, context_tokens


class LLMTruncatedError(LLMError):
    """The reply ran to max_tokens (finish_reason "length"): the JSON is cut off."""

    kind = "truncated"

    def __init__(self, message: str, max_tokens: int) -> None:
        super().__init__(message)
        self.max_tokens = max_tokens


class LLMReplyError(LLMError):
    """The server's answer is not an OpenAI chat completion."""

    kind = "bad_reply"


_OVERFLOW_RE = re.compile(r"maximum context length|context length|max_model_len|too long|prompt is too long", re.IGNORECASE)
_THINK_RE = re.compile(r"<think>.*?</think>\s*", re.DOTALL)


def strip_think(content: str | None) -> str | None:
    """The reply without its ``<think>...</think>`` block(s); an unclosed block leaves nothing."""
    if content is None:
        return None
    out = _THINK_RE.sub("", content)
    if "<think>" in out:  # thinking ran to the end: no answer was given
        out = out.split("<think>", 1)[0]
    return out.strip()


@dataclass
class ServedModel:
    """What /v1/models says about the served model."""

    id: str
    max_model_len: int | None = None


@dataclass
class LLMClient:
    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str | None = None
    api_key: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S  # httpx: connect, each read and each write (LLMSettings.timeout_s)
    disable_thinking: bool = True  # send chat_template_kwargs enable_thinking=false (vLLM; Qwen3 templates)
    context_tokens: int | None = None  # the served context (max_model_len); read from /v1/models when None
    _listed: bool = field(default=False, init=False, repr=False)
    _can_tokenize: bool | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def _request(self, client: httpx.AsyncClient, method: str, url: str, **kw) -> httpx.Response:
        import httpx

        try:
            return await client.request(method, url, headers=self._headers(), **kw)
        except httpx.TimeoutException as e:
            raise LLMTimeoutError(f"{url}: no answer within {self.timeout_s:g} s ({type(e).__name__})", self.timeout_s) from e
        except httpx.HTTPError as e:
            raise LLMUnavailableError(f"{url}: request failed ({type(e).__name__}: {e})") from e

    async def list_models(self, client: httpx.AsyncClient) -> list[ServedModel]:
        url = f"{self.base_url}/models"
        try:
            r = await self._request(client, "GET", url)
        except LLMTimeoutError as e:
            raise LLMTimeoutError(f"could not list the served models: {e}", e.timeout_s) from e
        except LLMUnavailableError as e:
            raise LLMUnavailableError(f"could not list the served models: {e}") from e
        if r.status_code != 200:
            raise LLMHTTPError(f"{url}: HTTP {r.status_code}: {r.text[:300]}", r.status_code)
        try:
            return [ServedModel(str(m["id"]), m.get("max_model_len")) for m in r.json()["data"]]
        except (KeyError, TypeError, ValueError) as e:
            raise LLMReplyError(f"{url}: could not list the served models ({type(e).__name__}: {e})") from e

    async def resolve_model(self, client: httpx.AsyncClient) -> str:
        """The model name (the first served one when none was given); also reads the served context."""
        if self.model and (self._listed or self.context_tokens is not None):
            return self.model
        try:
            models = await self.list_models(client)
        except LLMError:
            if self.model:  # a server without /v1/models still serves chat
                self._listed = True
                return self.model
            raise
        self._listed = True
        if not models:
            raise LLMReplyError(f"{self.base_url}/models: the server lists no model")
        chosen = next((m for m in models if m.id == self.model), None) if self.model else models[0]
        if chosen is not None:
            self.model = chosen.id
            if self.context_tokens is None:
                self.context_tokens = chosen.max_model_len
        return self.model

    async def count_prompt_tokens(self, messages: list[dict], client: httpx.AsyncClient) -> tuple[int, bool]:
        """(tokens, exact): the chat prompt's length from vLLM's /tokenize (chat template applied),
        or an estimate from its characters when the server has no such route."""
        if self._can_tokenize is not False:
            r = await self._request(client, "POST", f"{self.root_url}/tokenize",
                                    json={"model": await self.resolve_model(client), "messages": messages,
                                          "add_generation_prompt": True})
            if r.status_code == 200:
                try:
                    data = r.json()
                    self._can_tokenize = True
                    if self.context_tokens is None and data.get("max_model_len"):
                        self.context_tokens = int(data["max_model_len"])
                    return int(data["count"]), True
                except (KeyError, TypeError, ValueError):
                    pass
            self._can_tokenize = False
        chars = sum(len(str(m.get("content") or "")) + 8 for m in messages)
        return int(chars / CHARS_PER_TOKEN_ESTIMATE) + 1, False

    async def check_budget(self, messages: list[dict], max_tokens: int, client: httpx.AsyncClient) -> int | None:
        """Raise LLMContextOverflowError when prompt + max_tokens exceed the served context;
        returns the prompt tokens (None when the context is unknown and nothing was checked)."""
        await self.resolve_model(client)
        if self.context_tokens is None:
            return None
        n, exact = await self.count_prompt_tokens(messages, client)
        if n + max_tokens > self.context_tokens:
            raise LLMContextOverflowError(
                f"prompt {n} tokens ({'counted by the server' if exact else 'estimated'}) + max_tokens {max_tokens} "
                f"> the served context of {self.context_tokens} tokens; not sent", n, max_tokens, self.context_tokens)
        return n

    async def chat(self, messages: list[dict], *, response_format: dict | None = None, tools: list[dict] | None = None,
                   tool_choice: str | dict | None = None, temperature: float = 0.0, max_tokens: int = 1500,
                   client: httpx.AsyncClient | None = None, check_context: bool = False) -> dict:
        """One chat completion; returns the first choice's message dict (content without any
        <think> block, ``finish_reason`` added). ``check_context``: refuse before sending when the
        prompt + max_tokens exceed the served context."""
        import httpx

        own = client is None
        client = client or httpx.AsyncClient(timeout=self.timeout_s)
        try:
            body: dict = {"model": await self.resolve_model(client), "messages": messages,
                          "temperature": temperature, "max_tokens": max_tokens}
            if response_format is not None:
                body["response_format"] = response_format
            if tools is not None:
                body["tools"] = tools
            if tool_choice is not None:
                body["tool_choice"] = tool_choice
            if self.disable_thinking:
                body["chat_template_kwargs"] = {"enable_thinking": False}
            if check_context:
                await self.check_budget(messages, max_tokens, client)
            url = f"{self.base_url}/chat/completions"
            r = await self._request(client, "POST", url, json=body)
            if r.status_code != 200:
                msg = f"{url}: HTTP {r.status_code}: {r.text[:500]}"
                if r.status_code in (400, 413) and _OVERFLOW_RE.search(r.text):
                    raise LLMContextOverflowError(msg, None, max_tokens, self.context_tokens, r.status_code)
                raise LLMHTTPError(msg, r.status_code)
            try:
                choice = r.json()["choices"][0]
                msg = dict(choice["message"])
            except (KeyError, IndexError, TypeError, ValueError, json.JSONDecodeError) as e:
                raise LLMReplyError(f"{url}: unexpected reply {r.text[:300]!r}") from e
            msg["content"] = strip_think(msg.get("content"))
            msg["finish_reason"] = choice.get("finish_reason")
            return msg
        finally:
            if own:
                await client.aclose()


def json_schema_format(name: str, schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
