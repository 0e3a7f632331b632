"""A small async client for OpenAI-compatible chat servers (vLLM's in production).

Structured output uses ``response_format={"type": "json_schema", ...}`` (the current vLLM API;
the removed ``guided_json`` field is never sent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx

from radagent.errors import RadagentError


DEFAULT_TIMEOUT_S = 120.0  # per request: a 2,000-token JSON draft takes ~60 s at 30 tokens/s on a small GPU


class LLMError(RadagentError):
    """The LLM server could not be reached or answered with an error."""


class LLMTimeoutError(LLMError):
    """The LLM server did not answer within the timeout (a stalled or overloaded server)."""

    def __init__(self, message: str, timeout_s: float) -> None:
        super().__init__(message)
        self.timeout_s = timeout_s


@dataclass
class LLMClient:
    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str | None = None
    api_key: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S  # httpx: connect, each read and each write (LLMSettings.timeout_s)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def resolve_model(self, client: httpx.AsyncClient) -> str:
        if self.model:
            return self.model
        try:
            r = await client.get(f"{self.base_url}/models", headers=self._headers())
            r.raise_for_status()
            self.model = r.json()["data"][0]["id"]
        except httpx.TimeoutException as e:
            raise LLMTimeoutError(f"{self.base_url}/models: timed out after {self.timeout_s:g} s", self.timeout_s) from e
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
            raise LLMError(f"{self.base_url}/models: could not list the served models ({type(e).__name__}: {e})") from e
        return self.model

    async def chat(self, messages: list[dict], *, response_format: dict | None = None, tools: list[dict] | None = None,
                   tool_choice: str | dict | None = None, temperature: float = 0.0, max_tokens: int = 1500,
                   client: httpx.AsyncClient | None = None) -> dict:
        """One chat completion; returns the first choice's message dict."""
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
            try:
                r = await client.post(f"{self.base_url}/chat/completions", json=body, headers=self._headers())
            except httpx.TimeoutException as e:
                raise LLMTimeoutError(f"{self.base_url}/chat/completions: no answer within {self.timeout_s:g} s "
                                      f"({type(e).__name__})", self.timeout_s) from e
            except httpx.HTTPError as e:
                raise LLMError(f"{self.base_url}: request failed ({type(e).__name__}: {e})") from e
            if r.status_code != 200:
                raise LLMError(f"{self.base_url}/chat/completions: HTTP {r.status_code}: {r.text[:500]}")
            try:
                return r.json()["choices"][0]["message"]
            except (KeyError, IndexError, ValueError, json.JSONDecodeError) as e:
                raise LLMError(f"{self.base_url}/chat/completions: unexpected reply {r.text[:300]!r}") from e
        finally:
            if own:
                await client.aclose()


def json_schema_format(name: str, schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
