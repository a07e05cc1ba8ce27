"""Clouds: what the router costs on Azure OpenAI, Claude on Bedrock and on Vertex AI, and
Gemini on Vertex AI, against each cloud's bare SDK client, in one run.

Both sides answer from memory (the bare client through an ``httpx2.MockTransport``, the
router through its transport seam), so what is left is the SDK's work and the router's:
SigV4 signing, event framing and token handling are the SDK's and happen on both sides.
Variants run in interleaved blocks; the ratio is of the medians. A second measure is a
conversation: ten turns of tool calls with signed reasoning, translated by the router
(reasoning carried, ids mapped) against the same history handed to the SDK as it wants it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from typing import Any

from benchmarks._micro import _blocks

__all__ = ["MODES", "markdown_section", "run_clouds", "targets"]

MODES = {
    "full": {"blocks": 12, "per_block": 200},
    "quick": {"blocks": 6, "per_block": 100},
    "tiny": {"blocks": 2, "per_block": 10},
}
#: A healthy call through the router may cost at most this much more than the bare SDK.
TARGET_RATIO = 1.15

_OPENAI = {"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
           "choices": [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "ok"}}],
           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
_ANTHROPIC = {"id": "m", "type": "message", "role": "assistant", "model": "claude",
              "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
              "usage": {"input_tokens": 1, "output_tokens": 1}}
_GEMINI = {"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]},
                           "finishReason": "STOP"}],
           "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1}}
BODIES = {"azure": _OPENAI, "bedrock": _ANTHROPIC, "vertex-claude": _ANTHROPIC,
          "vertex-gemini": _GEMINI}

PROVIDERS: dict[str, dict[str, Any]] = {
    "azure": {"type": "azure", "model": "gpt-4o-mini", "base_url": "https://bench.openai.azure.com",
              "api_key": "bench-azure-key-0123"},
    "bedrock": {"type": "anthropic", "platform": "bedrock", "region": "us-east-1",
                "model": "anthropic.claude-haiku-4-5-20251001-v1:0",
                "credentials": {"aws_access_key_id": "AKIABENCH0000000001",
                                "aws_secret_access_key": "bench-secret-0123456789"}},
    "vertex-claude": {"type": "anthropic", "platform": "vertex", "region": "us-east5",
                      "project": "bench", "model": "claude-haiku-4-5@20251001",
                      "credentials": {"access_token": "bench-token-0123456789"}},
    "vertex-gemini": {"type": "gemini", "platform": "vertex", "region": "us-central1",
                      "project": "bench", "model": "gemini-2.5-flash",
                      "credentials": {"access_token": "bench-token-0123456789"}},
}


def _reply(request: Any) -> Any:
    import httpx2

    request.read()
    url = str(request.url)
    name = ("bedrock" if "/model/" in url else "vertex-claude" if "rawPredict" in url
            else "vertex-gemini" if "generateContent" in url else "azure")
    return httpx2.Response(200, headers={"content-type": "application/json"},
                           content=json.dumps(BODIES[name]).encode())


class _Canned:
    def handle_request(self, request: Any, provider: str) -> Any:
        return _reply(request)

    async def handle_async_request(self, request: Any, provider: str) -> Any:
        return _reply(request)


def _bare(name: str, messages: Any = None) -> Callable[[], object]:
    """The cloud's own SDK client, built as its documentation says, retries off."""
    import anthropic
    import httpx2
    import openai
    from google import genai
    from google.oauth2.credentials import Credentials

    http = httpx2.Client(transport=httpx2.MockTransport(_reply))
    config = PROVIDERS[name]
    if name == "azure":
        client: Any = openai.AzureOpenAI(
            azure_endpoint=config["base_url"], azure_deployment=config["model"],
            api_version="2024-10-21", api_key=config["api_key"], max_retries=0,
            http_client=http)
        chat = messages or [{"role": "user", "content": "ping"}]
        return lambda: client.chat.completions.create(model=config["model"], messages=chat)
    if name in ("bedrock", "vertex-claude"):
        if name == "bedrock":
            creds = config["credentials"]
            client = anthropic.AnthropicBedrock(
                aws_access_key=creds["aws_access_key_id"],
                aws_secret_key=creds["aws_secret_access_key"], aws_region=config["region"],
                max_retries=0, http_client=http)
        else:
            client = anthropic.AnthropicVertex(
                region=config["region"], project_id=config["project"], max_retries=0,
                access_token=config["credentials"]["access_token"], http_client=http)
        turns = messages or [{"role": "user", "content": "ping"}]
        return lambda: client.messages.create(model=config["model"], max_tokens=4096,
                                              messages=turns, timeout=30.0)
    gclient = genai.Client(
        vertexai=True, project=config["project"], location=config["region"],
        credentials=Credentials(token=config["credentials"]["access_token"]),
        http_options=genai.types.HttpOptions(
            httpx_client=http, httpx_async_client=httpx2.AsyncClient(),
            retry_options=genai.types.HttpRetryOptions(attempts=1)))
    # What a careful caller sends too: a timeout (the SDK has none) and no automatic
    # function calling.
    call_config = genai.types.GenerateContentConfig(
        http_options=genai.types.HttpOptions(timeout=30_000),
        automatic_function_calling=genai.types.AutomaticFunctionCallingConfig(disable=True))
    return lambda: gclient.models.generate_content(model=config["model"], contents="ping",
                                                   config=call_config)


def _routed(router: Any, name: str, messages: Any = None,
            tools: Any = None) -> Callable[[], object]:
    ask = messages or "ping"
    if tools is None:
        return lambda: router.complete(ask, route=name)
    return lambda: router.complete(ask, route=name, tools=tools)


def _conversation() -> tuple[list[Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Ten turns: the unified history, and the same as the Messages API takes it."""
    import failover

    history: list[Any] = [failover.Message("user", "Plan my week of cycling in Oslo.")]
    wire: list[dict[str, Any]] = [{"role": "user", "content": "Plan my week of cycling."}]
    for turn in range(10):
        call_id = f"toolu_{turn:02d}"
        history.append(failover.Message("assistant", (
            failover.ReasoningPart(f"day {turn}: I need the forecast", signature=f"sig{turn}" * 8,
                                   origin="anthropic"),
            failover.TextPart(f"Checking day {turn}.")),
            tool_calls=(failover.ToolCall(call_id, "weather", {"day": turn}),)))
        history.append(failover.Message("tool", '{"rain_mm": 1}', tool_call_id=call_id))
        wire.append({"role": "assistant", "content": [
            {"type": "thinking", "thinking": f"day {turn}: I need the forecast",
             "signature": f"sig{turn}" * 8},
            {"type": "text", "text": f"Checking day {turn}."},
            {"type": "tool_use", "id": call_id, "name": "weather", "input": {"day": turn}}]})
        wire.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call_id, "content": '{"rain_mm": 1}'}]})
    tools = [{"name": "weather", "input_schema": {"type": "object"}}]
    return history, wire, tools


def run_clouds(mode: str) -> dict[str, Any]:
    import failover
    from failover.providers._base import override_transport

    params = MODES[mode]
    config = failover.Config.from_mapping({
        "providers": PROVIDERS, "routes": {name: {"chain": [name]} for name in PROVIDERS}})
    out: dict[str, Any] = {"params": params, "platforms": {}}
    with failover.Router(config) as router, override_transport(_Canned()):
        for name in PROVIDERS:
            blocks = _blocks({"sdk": _bare(name), "router": _routed(router, name)},
                             params["blocks"], params["per_block"], warmup=50)
            out["platforms"][name] = _ratio(blocks)
        history, wire, tools = _conversation()
        blocks = _blocks({"sdk": _bare("bedrock", wire),
                          "router": _routed(router, "bedrock", history, tools)},
                         params["blocks"], max(params["per_block"] // 4, 5), warmup=20)
        out["conversation"] = _ratio(blocks)
    return out


def _ratio(blocks: dict[str, list[float]]) -> dict[str, Any]:
    sdk, routed = statistics.median(blocks["sdk"]), statistics.median(blocks["router"])
    return {"sdk_us": sdk, "router_us": routed, "ratio": routed / sdk,
            "overhead_us": statistics.median(
                r - s for r, s in zip(blocks["router"], blocks["sdk"], strict=True))}


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = doc.get("platforms", {})
    if not rows:
        return []
    worst = max(rows, key=lambda n: rows[n]["ratio"])
    text = ", ".join(f"{n} {r['ratio']:.2f}x" for n, r in rows.items())
    return [{"id": "clouds", "target": f"a healthy call on each cloud costs at most "
             f"{TARGET_RATIO:.2f}x the cloud's bare SDK client (in memory)",
             "measured_text": f"{text} (worst: {worst})",
             "pass": rows[worst]["ratio"] <= TARGET_RATIO}]


def markdown_section(doc: dict[str, Any]) -> list[str]:
    lines = ["## Clouds", "",
             "Each cloud's bare SDK client against the router with that one provider, both "
             "answered from memory (signing, framing and token handling happen on both "
             "sides), interleaved blocks, medians:", "",
             "| provider | bare SDK µs | router µs | ratio | router overhead µs |",
             "|---|---|---|---|---|"]
    for name, r in doc.get("platforms", {}).items():
        lines.append(f"| {name} | {r['sdk_us']:.0f} | {r['router_us']:.0f} | "
                     f"{r['ratio']:.2f}x | {r['overhead_us']:.0f} |")
    c = doc.get("conversation")
    if c:
        lines += ["", "A ten-turn Claude conversation on Bedrock (tool calls, signed thinking), "
                  "the router translating the unified history against the SDK given the wire "
                  f"form: {c['sdk_us']:.0f} µs bare, {c['router_us']:.0f} µs routed "
                  f"({c['ratio']:.2f}x, {c['overhead_us']:.0f} µs for the translation and "
                  "the routing)."]
    lines.append("")
    return lines
