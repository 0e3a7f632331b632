"""The chat agent: questions about one study answered from its Findings, with or without an LLM.

``ChatSession(findings, llm_url=None, model=None)`` keeps one conversation:

- ``session.ask(message) -> ChatTurn`` (``await session.aask(message)`` from async code);
- ``async for event in session.astream(message)``: ``{"type": "token", "text": ...}`` events, then
  one ``{"type": "final", "text": ..., "engine": ..., "finding_ids": [...], "turn": {...}}``.

Without an LLM URL every turn is deterministic: the message is resolved to a
:class:`reasoning.vqa.Question` (templated text via ``vqa.parse_question``, plus the follow-up
resolution below) and answered by ``vqa.answer``; a message nothing maps is answered with the list
of supported question types (never guessed).

With an LLM URL the turn runs a LangChain v1 agent (``langchain.agents.create_agent`` around
``langchain_openai.ChatOpenAI`` on the OpenAI-compatible server) whose tools are the deterministic
functions of :class:`FindingsTools` (they read the Findings object only, never voxels):
``answer_question`` (vqa.answer: subtype + parameters), ``list_lesions``, ``get_lesion``,
``get_organ``, ``compare`` and ``lookup_medical_knowledge``. The first model call of a turn is sent
with ``tool_choice="required"`` (small models never call a tool with "auto"); after
``max_tool_rounds`` rounds of tool calls the model is asked with ``tool_choice="none"``. Tools are
sent with ``"strict": true`` (``strict_tools``), so vLLM constrains the arguments to each tool's
schema (without it SmolLM2-135M's forced calls carried arguments like ``{"type": "string"}``).

Final answers (``answer_mode``):

- ``"structured"`` (default): grounded by construction (:mod:`reasoning.chat_answer`). After the
  first round of tool calls the agent stops; code renders each fact of the tool results (and the
  message's deterministic answer, always stated first) with its unit and context, and one request
  with ``response_format`` ``json_schema`` asks the model which facts to state (their references,
  an enum) and for connective words (a JSON-schema ``pattern`` without digits, brackets or markup;
  ``max_tokens`` follows from the schema). Connective words carrying a number word, yes/no, a
  negation, tool-call markup or a claim the grounding validator rejects are refused; the re-ask
  sends the errors, not the refused reply.
- ``"free_text"``: the model writes the final text, accepted only if

1. every sentence passes ``reasoning.grounding.Validator.check_sentence`` (the report check),
   citing the finding ids the tools returned during the turn. Numbers a tool *derived* during the
   turn (an answer value such as a tumour burden %, a compare difference or ratio, a knowledge
   threshold) are not findings facts; each is accepted where it equals such a tool value under the
   validator's rounding rule and is then removed before the sentence is checked;
2. where the message resolves to a templated question, the text states the deterministic answer
   (the number with its unit under the same rounding rule, the yes/no, the category, the choice
   letter, or that it cannot be determined). A grounded text that answers something else is
   rejected.

In both modes tool-call markup (``<tool_call>``, ``<tool_response>``, JSON tool calls) is never
shown. A rejected text is sent back with the errors (``max_attempts`` replies in all); then the turn
falls back to the deterministic answer and says so (``engine="deterministic"``,
``fallback_reason``). An unreachable server falls back the same way.

Follow-ups: the session keeps a small state (:class:`ChatState`: the last question, its organ,
lesion and rank). "and the second largest?", "the smallest one?", "what about the spleen?",
"and its diameter?", "and L3?" resolve against it deterministically, so the expected answer is
known whether or not the LLM resolves them too; the LLM sees the conversation (previous questions
and accepted answers) and a bracketed hint with the resolved question.

Streaming: the grounding check needs the whole reply, so nothing unchecked is ever shown; the
token events carry the accepted text in word-sized chunks once the turn is decided.

Modules: :mod:`reasoning.chat_tools` (the tools and their schemas), :mod:`reasoning.chat_state`
(the state and follow-up resolution), :mod:`reasoning.chat_check` (the reply check); this module
holds the turn record and the session, and re-exports the names callers import from it.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from perception.schema import Findings
from reasoning.chat_answer import (
    MARKUP_RE,
    Fact,
    build_facts,
    instruction,
    max_tokens_for,
    render,
    response_format,
)
from reasoning.chat_check import check_reply, split_sentences, states_answer
from reasoning.chat_state import (
    ChatState,
    Resolution,
    _organ_of,
    answer_text,
    describe_lesion,
    resolve,
)
from reasoning.chat_tools import (
    DERIVABLE_UNITS,
    TOOL_NAMES,
    TOOL_SPECS,
    AnswerQuestionArgs,
    CompareArgs,
    CompareField,
    FindingsTools,
    GetLesionArgs,
    GetOrganArgs,
    KnowledgeArgs,
    ListLesionsArgs,
    SubtypeName,
    ToolResult,
    find_lesion,
    langchain_tools,
    ranked_lesions,
)
from reasoning.grounding import Validator
from reasoning.vqa import Answer

__all__ = [  # the session, and the names of chat_tools / chat_state / chat_check that callers import from here
    "DERIVABLE_UNITS",
    "SYSTEM_PROMPT",
    "TOOL_NAMES",
    "TOOL_SPECS",
    "AnswerQuestionArgs",
    "ChatSession",
    "ChatState",
    "ChatTurn",
    "CompareArgs",
    "CompareField",
    "FindingsTools",
    "GetLesionArgs",
    "GetOrganArgs",
    "KnowledgeArgs",
    "ListLesionsArgs",
    "Resolution",
    "SubtypeName",
    "ToolCallRecord",
    "ToolResult",
    "answer_text",
    "ask_with_llm",
    "check_reply",
    "describe_lesion",
    "find_lesion",
    "langchain_tools",
    "ranked_lesions",
    "resolve",
    "split_sentences",
    "states_answer",
]


# --- the turn record ------------------------------------------------------------------------------
class ToolCallRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    args: dict = {}
    finding_ids: list[str] = []
    error: str | None = None
    result: Any = Field(None, description="the JSON the model saw")


class ChatTurn(BaseModel):
    """One question and its answer, with the evidence."""

    model_config = ConfigDict(extra="forbid")

    message: str
    text: str = Field(description="the answer shown to the user")
    engine: Literal["llm", "deterministic"]
    answer: Answer | None = Field(None, description="the deterministic Answer of the question (None for a lesion summary)")
    answers: list[Answer] = Field([], description="every Answer used: the deterministic one and those of answer_question calls")
    tool_calls: list[ToolCallRecord] = []
    finding_ids: list[str] = []
    grounding_errors: list[list[str]] = Field([], description="errors of each rejected LLM reply")
    attempts: int = Field(0, description="LLM replies asked for")
    fallback_reason: str | None = None
    resolved_as: str | None = Field(None, description="how a follow-up was read")
    model: str | None = None
    seconds: float = 0.0


# --- the session ----------------------------------------------------------------------------------
SYSTEM_PROMPT = """You answer questions about one abdominal CT study. Your only source of facts is the tools, which read the study's measured findings. Never state a number, lesion id, location or stage that a tool did not return.
First call a tool: answer_question for standard question types (subtype + parameters), list_lesions, get_lesion, get_organ or compare for lookups, lookup_medical_knowledge for thresholds.
Then answer in 1-3 short sentences: the direct answer first (the number with its unit, yes or no, or the category), then the lesion ids it rests on. Copy numbers exactly as the tools give them, with units (mL, mm, HU, %); write counts with the organ (3 liver lesions). If a tool says the answer cannot be determined, say so and why."""


@dataclass
class _TurnContext:
    start: int  # index of this turn's user message in the message list
    force_tool: bool
    first_tool_choice: Any
    max_tool_rounds: int
    strict_tools: bool = True
    stop_after_tools: bool = False  # structured answers: after the first round of tool calls the agent stops


def _tool_policy_middleware():
    """Middleware: tool_choice 'required' (or named) on the turn's first model call, 'none' after
    max_tool_rounds rounds of tool calls."""
    from langchain.agents.middleware import AgentMiddleware
    from langchain_core.messages import AIMessage

    class ToolPolicy(AgentMiddleware):
        def _adjust(self, request):
            ctx = request.runtime.context if request.runtime is not None else None
            if not isinstance(ctx, _TurnContext):
                return request
            change: dict = {}
            if ctx.strict_tools:  # 'strict': the server constrains tool arguments to each tool's schema
                change["model_settings"] = {**request.model_settings, "strict": True}
            rounds = sum(1 for m in request.messages[ctx.start:] if isinstance(m, AIMessage) and m.tool_calls)
            if rounds == 0 and ctx.force_tool:
                change["tool_choice"] = ctx.first_tool_choice
            elif rounds >= ctx.max_tool_rounds:
                change["tool_choice"] = "none"
            return request.override(**change) if change else request

        @staticmethod
        def _stop(request) -> bool:
            ctx = request.runtime.context if request.runtime is not None else None
            return isinstance(ctx, _TurnContext) and ctx.stop_after_tools and any(
                isinstance(m, AIMessage) and m.tool_calls for m in request.messages[ctx.start:])

        def wrap_model_call(self, request, handler):
            if self._stop(request):  # the answer is written as structured output after the agent (no free text)
                return AIMessage(content="")
            return handler(self._adjust(request))

        async def awrap_model_call(self, request, handler):
            if self._stop(request):
                return AIMessage(content="")
            return await handler(self._adjust(request))

    return ToolPolicy()


def _v1(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class ChatSession:
    """One conversation about one study. Its turns run one at a time (a turn started while another
    runs raises RuntimeError); use one session per conversation."""

    def __init__(self, findings: Findings, llm_url: str | None = None, model: str | None = None, *,
                 api_key: str | None = None, max_attempts: int = 3, max_tool_rounds: int = 3,
                 first_tool_choice: str | dict | None = "required", strict_tools: bool = True, max_tokens: int = 300,
                 timeout_s: float = 120.0, history_turns: int = 6,  # reasoning.client.DEFAULT_TIMEOUT_S
                 answer_mode: Literal["structured", "free_text"] = "structured", comparison=None):
        self.findings = findings
        self.comparison = comparison  # comparison.json with the priors: change questions resolve against it
        self.llm_url = _v1(llm_url) if llm_url else None
        self.model = model
        self.api_key = api_key
        self.max_attempts = max(1, max_attempts)
        self.max_tool_rounds = max(1, max_tool_rounds)
        self.first_tool_choice = first_tool_choice
        self.strict_tools = strict_tools
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.history_turns = history_turns
        self.answer_mode = answer_mode
        if self.llm_url is not None:
            import importlib.util

            missing = [m for m in ("langchain", "langchain_openai") if importlib.util.find_spec(m) is None]
            if missing:
                from reasoning.client import LLMError

                raise LLMError(f"the chat agent needs {', '.join(missing)}: pip install 'radagent[agent]'")
        self.tools = FindingsTools(findings)
        self.validator = Validator(findings)
        self.state = ChatState()
        self.turns: list[ChatTurn] = []
        self._agent = None
        self._lock = threading.Lock()

    # public API -----------------------------------------------------------------------------------
    def ask(self, message: str, choices: list[str] | None = None) -> ChatTurn:
        """Answer one message (``choices``: multiple-choice options 'A) ...'). Synchronous."""
        self._enter()
        try:
            return self._ask(message, choices)
        finally:
            self._lock.release()

    async def aask(self, message: str, choices: list[str] | None = None) -> ChatTurn:
        """Answer one message without blocking the event loop."""
        self._enter()
        try:
            return await self._aask(message, choices)
        finally:
            self._lock.release()

    def _enter(self) -> None:
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("this ChatSession is answering another message; the turns of one conversation run one at a time")

    def _ask(self, message: str, choices: list[str] | None) -> ChatTurn:
        t0 = time.perf_counter()
        res = resolve(self.findings, message, self.state, choices, self.comparison)
        if self.llm_url is None:
            return self._finish(self._deterministic(message, res), res, t0)
        try:
            agent = self._ensure_agent_sync()
            invoke = lambda msgs, ctx: agent.invoke({"messages": msgs}, context=ctx, config=self._config())
            turn = self._llm_turn(message, res, choices, invoke)
        except _LLMUnavailable as e:
            turn = self._fallback(message, res, [], [], 0, f"LLM unavailable: {e}")
        return self._finish(turn, res, t0)

    async def _aask(self, message: str, choices: list[str] | None) -> ChatTurn:
        t0 = time.perf_counter()
        res = resolve(self.findings, message, self.state, choices, self.comparison)
        if self.llm_url is None:
            return self._finish(self._deterministic(message, res), res, t0)
        try:
            agent = await self._ensure_agent_async()
            msgs0, start = self._messages(message, res, choices)
            msgs, errors_seen = msgs0, []
            if self.answer_mode == "structured":
                try:
                    msgs = (await agent.ainvoke({"messages": msgs}, context=self._ctx(start, 1), config=self._config()))["messages"]
                except Exception as e:
                    raise _LLMUnavailable(f"{type(e).__name__}: {e}") from e
                facts, forced = self._facts(res, msgs, start)
                if not facts:
                    return self._finish(self._no_facts(message, res, msgs, start), res, t0)
                for attempt in range(1, self.max_attempts + 1):
                    body, kw = self._final_request(msgs, facts, errors_seen)
                    try:
                        out = await self._final_llm.bind(**kw).ainvoke(body)
                        raw, err = self._final_call(lambda out=out: out)
                    except _LLMUnavailable:
                        raise
                    except Exception as e:  # noqa: BLE001
                        raw, err = self._final_call(lambda e=e: (_ for _ in ()).throw(e))
                    turn = self._after_structured(message, res, msgs, start, attempt, errors_seen, raw, err, facts, forced)
                    if turn is not None:
                        return self._finish(turn, res, t0)
                return self._finish(self._give_up(message, res, msgs, start, errors_seen), res, t0)
            for attempt in range(1, self.max_attempts + 1):
                try:
                    out = await agent.ainvoke({"messages": msgs}, context=self._ctx(start, attempt), config=self._config())
                except Exception as e:
                    raise _LLMUnavailable(f"{type(e).__name__}: {e}") from e
                turn, msgs = self._after_attempt(message, res, out["messages"], start, attempt, errors_seen)
                if turn is not None:
                    return self._finish(turn, res, t0)
            turn = self._give_up(message, res, msgs, start, errors_seen)
        except _LLMUnavailable as e:
            turn = self._fallback(message, res, [], [], 0, f"LLM unavailable: {e}")
        return self._finish(turn, res, t0)

    async def astream(self, message: str, choices: list[str] | None = None) -> AsyncIterator[dict]:
        """Token events with the accepted text (released only after the grounding check), then the final event."""
        turn = await self.aask(message, choices)
        for chunk in re.findall(r"\S+\s*|\s+", turn.text):
            yield {"type": "token", "text": chunk}
            await asyncio.sleep(0)
        yield {"type": "final", "text": turn.text, "engine": turn.engine, "finding_ids": turn.finding_ids,
               "turn": turn.model_dump(mode="json")}

    def reset(self) -> None:
        self.state = ChatState()
        self.turns.clear()

    # deterministic ----------------------------------------------------------------------------------
    def _deterministic(self, message: str, res: Resolution) -> ChatTurn:
        a = res.answer
        return ChatTurn(message=message, text=res.text, engine="deterministic", answer=a, answers=[a] if a else [],
                        finding_ids=list(a.finding_ids) if a else self._ids_of_text(res), resolved_as=res.note)

    def _ids_of_text(self, res: Resolution) -> list[str]:
        return [res.state.lesion_id] if res.state is not None and res.state.lesion_id else []

    # LLM --------------------------------------------------------------------------------------------
    def _config(self) -> dict:
        return {"recursion_limit": 2 * self.max_tool_rounds + 6}

    def _ctx(self, start: int, attempt: int) -> _TurnContext:
        return _TurnContext(start, attempt == 1 and bool(self.first_tool_choice), self.first_tool_choice, self.max_tool_rounds,
                            self.strict_tools, self.answer_mode == "structured")

    def _build_agent(self):
        from langchain.agents import create_agent
        from langchain_openai import ChatOpenAI

        llm = ChatOpenAI(model=self.model, base_url=self.llm_url, api_key=self.api_key or "EMPTY", temperature=0.0,
                         max_tokens=self.max_tokens, timeout=self.timeout_s, max_retries=1)
        self._final_llm = ChatOpenAI(model=self.model, base_url=self.llm_url, api_key=self.api_key or "EMPTY", temperature=0.0,
                                     timeout=self.timeout_s, max_retries=1)
        return create_agent(llm, langchain_tools(self.tools), system_prompt=SYSTEM_PROMPT,
                            middleware=[_tool_policy_middleware()], context_schema=_TurnContext)

    def _ensure_agent_sync(self):
        if self._agent is None:
            if not self.model:
                import httpx

                try:
                    r = httpx.get(f"{self.llm_url}/models", timeout=30, headers=self._headers())
                    r.raise_for_status()
                    self.model = r.json()["data"][0]["id"]
                except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
                    raise _LLMUnavailable(f"{self.llm_url}/models: could not list the served models ({type(e).__name__}: {e})") from e
            self._agent = self._build_agent()
        return self._agent

    async def _ensure_agent_async(self):
        if self._agent is None:
            if not self.model:
                import httpx

                try:
                    async with httpx.AsyncClient(timeout=30) as c:
                        r = await c.get(f"{self.llm_url}/models", headers=self._headers())
                    r.raise_for_status()
                    self.model = r.json()["data"][0]["id"]
                except (httpx.HTTPError, KeyError, IndexError, ValueError) as e:
                    raise _LLMUnavailable(f"{self.llm_url}/models: could not list the served models ({type(e).__name__}: {e})") from e
            self._agent = self._build_agent()
        return self._agent

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _messages(self, message: str, res: Resolution, choices: list[str] | None):
        from langchain_core.messages import AIMessage, HumanMessage

        hist = []
        for t in self.turns[-self.history_turns:]:
            hist += [HumanMessage(t.message), AIMessage(t.text)]
        content = message.strip()
        if choices:
            content += "\nOptions:\n" + "\n".join(choices) + "\nAnswer with the letter of the matching option."
        if res.question is not None:
            q = res.question
            params = {k: v for k, v in q.model_dump(exclude={"text", "subtype"}, exclude_defaults=True).items() if v}
            hint = f"subtype {q.subtype!r}" + "".join(f", {k} {v!r}" for k, v in params.items())
            content += f"\n[Parsed question: {hint}" + (f" ({res.subject})" if res.subject else "") + \
                       ". Call answer_question with these parameters.]"
        return hist + [HumanMessage(content)], len(hist)

    def _llm_turn(self, message, res, choices, invoke) -> ChatTurn:
        msgs, start = self._messages(message, res, choices)
        errors_seen: list[list[str]] = []
        if self.answer_mode == "structured":
            try:
                msgs = invoke(msgs, self._ctx(start, 1))["messages"]
            except Exception as e:
                raise _LLMUnavailable(f"{type(e).__name__}: {e}") from e
            facts, forced = self._facts(res, msgs, start)
            if not facts:
                return self._no_facts(message, res, msgs, start)
            for attempt in range(1, self.max_attempts + 1):
                body, kw = self._final_request(msgs, facts, errors_seen)
                raw, err = self._final_call(lambda body=body, kw=kw: self._final_llm.bind(**kw).invoke(body))
                turn = self._after_structured(message, res, msgs, start, attempt, errors_seen, raw, err, facts, forced)
                if turn is not None:
                    return turn
            return self._give_up(message, res, msgs, start, errors_seen)
        for attempt in range(1, self.max_attempts + 1):
            try:
                out = invoke(msgs, self._ctx(start, attempt))
            except Exception as e:
                raise _LLMUnavailable(f"{type(e).__name__}: {e}") from e
            turn, msgs = self._after_attempt(message, res, out["messages"], start, attempt, errors_seen)
            if turn is not None:
                return turn
        return self._give_up(message, res, msgs, start, errors_seen)

    # structured answers ---------------------------------------------------------------------------
    def _facts(self, res: Resolution, msgs: list, start: int) -> tuple[list[Fact], list[str]]:
        _, results = self._records(msgs, start)
        expected = res.answer if res.answer is not None and res.answer.status in ("answered", "cannot_be_determined") else None
        facts = build_facts(self.findings, expected, res.subject, results, res.mention)
        forced = [x.ref for x in facts if (expected is not None and x.ref == "F1")
                  or any(x.finding_ids == [m] and x.text.startswith(f"{m}: ") for m in res.mention)]
        return facts, forced

    def _final_request(self, msgs: list, facts: list[Fact], errors_seen: list[list[str]]) -> tuple[list, dict]:
        """The messages and request settings of the structured final answer (the re-ask carries the
        errors of the refused reply, not the reply)."""
        from langchain_core.messages import AIMessage, HumanMessage

        keep = [m for m in msgs if not (isinstance(m, AIMessage) and not m.tool_calls)] if msgs else []
        hist = [m for m in msgs if isinstance(m, AIMessage) and not m.tool_calls and m.text.strip()]
        keep = [m for m in msgs if m in hist or m in keep]  # history answers kept, this turn's stop message dropped
        body = keep + [HumanMessage(instruction(facts, errors_seen[-1] if errors_seen else None))]
        return body, {"response_format": response_format(facts), "max_tokens": max_tokens_for(facts)}

    @staticmethod
    def _final_call(call) -> tuple[str | None, str | None]:
        """(raw reply, None) or (None, the attempt's error); an unreachable server raises _LLMUnavailable."""
        try:
            out = call()
        except Exception as e:
            if type(e).__name__ in ("LengthFinishReasonError", "ContentFilterFinishReasonError"):
                return None, f"the JSON answer was cut off ({type(e).__name__}); keep intro and closing short"
            raise _LLMUnavailable(f"{type(e).__name__}: {e}") from e
        return (out.text if hasattr(out, "text") else str(out.content)), None

    def _after_structured(self, message, res, msgs, start, attempt, errors_seen, raw, err, facts, forced) -> ChatTurn | None:
        records, results = self._records(msgs, start)
        rendered = render(self.validator, raw, facts, forced) if err is None else None
        errs = [err] if err is not None else rendered.errors
        if errs:
            errors_seen.append(errs)
            return None
        expected = res.answer if res.answer is not None and res.answer.status in ("answered", "cannot_be_determined") else None
        answers = ([res.answer] if res.answer is not None else []) + [r.answer for r in results if r.answer is not None]
        primary = expected or next((r.answer for r in reversed(results) if r.answer is not None and r.answer.status == "answered"),
                                   res.answer)
        return ChatTurn(message=message, text=rendered.text, engine="llm", answer=primary, answers=answers, tool_calls=records,
                        finding_ids=sorted(set(rendered.finding_ids), key=_id_key), grounding_errors=errors_seen,
                        attempts=attempt, resolved_as=res.note, model=self.model)

    def _no_facts(self, message, res, msgs, start) -> ChatTurn:
        records, results = self._records(msgs, start)
        return self._fallback(message, res, records, results, 0, "the tools returned no fact to answer with")

    def _records(self, msgs: list, start: int) -> tuple[list[ToolCallRecord], list[ToolResult]]:
        from langchain_core.messages import AIMessage, ToolMessage

        args = {}
        for m in msgs[start:]:
            if isinstance(m, AIMessage):
                for c in m.tool_calls:
                    args[c["id"]] = (c["name"], c.get("args") or {})
        records, results = [], []
        for m in msgs[start:]:
            if not isinstance(m, ToolMessage):
                continue
            name, a = args.get(m.tool_call_id, (m.name or "?", {}))
            r = m.artifact if isinstance(m.artifact, ToolResult) else None
            if r is None:  # argument validation failed before the tool ran
                r = ToolResult(None, error=str(m.content)[:500])
            results.append(r)
            records.append(ToolCallRecord(name=name, args=a, finding_ids=r.finding_ids, error=r.error, result=r.data))
        return records, results

    def _after_attempt(self, message, res, msgs, start, attempt, errors_seen):
        from langchain_core.messages import AIMessage, HumanMessage

        records, results = self._records(msgs, start)
        last = msgs[-1]
        text = last.text.strip() if isinstance(last, AIMessage) and not last.tool_calls else ""
        cited = sorted({i for r in results for i in r.finding_ids}, key=_id_key)
        derived = [v for r in results for v in r.values]
        expected = res.answer if res.answer is not None and res.answer.status in ("answered", "cannot_be_determined") else None
        errs = check_reply(self.validator, text, cited, derived, expected, res.mention)
        if not errs:
            answers = ([res.answer] if res.answer is not None else []) + [r.answer for r in results if r.answer is not None]
            primary = expected or next((r.answer for r in reversed(results) if r.answer is not None and r.answer.status == "answered"),
                                       res.answer)
            turn = ChatTurn(message=message, text=text, engine="llm", answer=primary, answers=answers, tool_calls=records,
                            finding_ids=cited, grounding_errors=errors_seen, attempts=attempt, resolved_as=res.note,
                            model=self.model)
            return turn, msgs
        errors_seen.append(errs)
        fix = ("Your answer has these problems:\n- " + "\n- ".join(errs[:20]) +
               "\nAnswer again in 1-3 sentences, using only numbers and lesion ids that the tools returned.")
        return None, list(msgs) + [HumanMessage(fix)]

    def _give_up(self, message, res, msgs, start, errors_seen) -> ChatTurn:
        records, results = self._records(msgs, start)
        return self._fallback(message, res, records, results, self.max_attempts,
                              f"the model's reply failed the grounding check {len(errors_seen)} time(s)", errors_seen)

    def _fallback(self, message, res, records, results, attempts, reason, errors_seen=None) -> ChatTurn:
        a, text = res.answer, res.text
        tool_answers = [r.answer for r in results if r.answer is not None]
        if (a is None or a.status == "unmapped_question") and any(x.status == "answered" for x in tool_answers):
            a = next(x for x in reversed(tool_answers) if x.status == "answered")
            q = a.question
            params = ", ".join(f"{k}={v}" for k, v in q.model_dump(exclude={"text", "subtype"}, exclude_defaults=True).items() if v)
            text = f"From answer_question({q.subtype}{', ' + params if params else ''}): {answer_text(a)}"
        answers = []
        for x in ([res.answer] if res.answer is not None else []) + tool_answers:
            if all(x is not y for y in answers):
                answers.append(x)
        return ChatTurn(message=message, text=f"{text}\n[Deterministic answer: {reason}.]", engine="deterministic", answer=a,
                        answers=answers, tool_calls=records,
                        finding_ids=list(a.finding_ids) if a else self._ids_of_text(res), grounding_errors=errors_seen or [],
                        attempts=attempts, fallback_reason=reason, resolved_as=res.note, model=self.model)

    # bookkeeping ------------------------------------------------------------------------------------
    def _finish(self, turn: ChatTurn, res: Resolution, t0: float) -> ChatTurn:
        if turn.engine == "llm" and MARKUP_RE.search(turn.text):  # never reached by construction; never shown either
            turn = self._fallback(turn.message, res, turn.tool_calls, [], turn.attempts, "the reply contained tool-call markup")
        if res.state is not None:
            self.state = res.state
        elif turn.engine == "llm":
            self._state_from_tools(turn)
        turn.seconds = round(time.perf_counter() - t0, 3)
        self.turns.append(turn)
        return turn

    def _state_from_tools(self, turn: ChatTurn) -> None:
        """An unmapped message the LLM answered: remember what its tools were about."""
        for rec in reversed(turn.tool_calls):
            if rec.error:
                continue
            if rec.name == "answer_question":
                a = next((x for x in reversed(turn.answers) if x.question is not None and x.question.subtype == rec.args.get("subtype")), None)
                if a is not None and a.question is not None:
                    lesion = a.question.lesion_id or next((i for i in a.finding_ids if re.fullmatch(r"L\d+", i)), None)
                    organ = a.question.organ or _organ_of(self.findings, lesion)
                    ids = [l.id for l in ranked_lesions(self.findings, organ)]
                    self.state = ChatState(a.question, organ, lesion, ids.index(lesion) if lesion in ids else None)
                    return
            if rec.name in ("list_lesions", "get_lesion"):
                lesion = rec.args.get("lesion_id") if rec.name == "get_lesion" else (rec.finding_ids[0] if rec.finding_ids else None)
                lesion = lesion.upper() if lesion else None
                organ = _organ_of(self.findings, lesion) if rec.name == "get_lesion" else (
                    (rec.result or {}).get("organ") if isinstance(rec.result, dict) and (rec.result or {}).get("organ") != "all" else None)
                ids = [l.id for l in ranked_lesions(self.findings, organ)]
                self.state = ChatState(self.state.question, organ, lesion, ids.index(lesion) if lesion in ids else None)
                return


class _LLMUnavailable(Exception):
    pass


def _id_key(i: str) -> tuple:
    m = re.fullmatch(r"L(\d+)", i)
    return (0, int(m.group(1)), "") if m else (1, 0, i)


def ask_with_llm(findings: Findings, question: str, llm_url: str | None, model: str | None = None,
                 choices: list[str] | None = None, **session_kw) -> tuple[str, Answer | None]:
    """One question through the chat agent (``radagent ask --llm``): the text shown and the
    deterministic Answer it rests on (None for a lesion summary). Deterministic without llm_url."""
    turn = ChatSession(findings, llm_url, model, **session_kw).ask(question, choices=choices)
    return turn.text, turn.answer
