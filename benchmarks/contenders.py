"""The contenders: one chat completion, answered by a primary or, when it fails, a backup.

Every contender exposes the same calls (`call`, `acall`, `stream`, `astream`, and
their closes) over the same two OpenAI-compatible endpoints, so a scenario can time any of
them the same way:

- ``sdk``: the bare openai SDK (``max_retries=0``) calling the *backup* directly: the
  floor, what a call costs when nothing routes it.
- ``handwritten``: try the primary, ``except openai.APIError`` call the backup: what
  an application writes by hand, with no memory of past failures.
- ``failover``: this library's `failover.Router` over providers of type ``openai``.
- ``litellm``: LiteLLM's ``Router`` with ``fallbacks`` (when installed).
- ``langchain``: ``ChatOpenAI(...).with_fallbacks([...])`` (when installed).

Third-party contenders are imported only inside their own worker process.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONTENDERS",
    "MESSAGES",
    "MODEL",
    "Contender",
    "Setup",
    "available",
    "build",
    "failover_config",
]

MODEL = "bench-model"
MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "ping"}]

#: name -> module that must be importable for it to run.
CONTENDERS: dict[str, str | None] = {
    "sdk": "openai",
    "handwritten": "openai",
    "failover": "failover",
    "litellm": "litellm",
    "langchain": "langchain_openai",
}


def available(name: str) -> bool:
    module = CONTENDERS.get(name.split(":")[0])
    return module is None or importlib.util.find_spec(module) is not None


@dataclass
class Setup:
    """Where the primary and the backup live, and how patient a contender may be."""

    primary_url: str
    secondary_url: str
    timeout_s: float = 0.2
    #: breaker settings for the failover router (its ``defaults.breaker``).
    breaker: dict[str, Any] = field(
        default_factory=lambda: {"consecutive_failures": 3, "open_for": "1s",
                                 "max_open_for": "4s"}
    )  # fmt: skip
    #: ``routes.default.hedge.after`` in milliseconds, or None for no hedging.
    hedge_ms: float | None = None
    #: failover variants: "" (chain primary -> backup), "direct" (chain: backup only),
    #: "skip" (primary forced open), "nobreaker" (breaker never opens).
    variant: str = ""


class Contender:
    """Base: count how often the primary was tried where the contender can tell."""

    name = "contender"

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        #: attempts on the primary, as seen from the client side (None: cannot tell).
        self.primary_attempts: int | None = None

    def call(self) -> str:
        raise NotImplementedError

    async def acall(self) -> str:
        raise NotImplementedError

    def stream(self) -> str:
        raise NotImplementedError

    async def astream(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


# --- the direct SDK -----------------------------------------------------------------------


def _sdk_client(base_url: str, timeout: float) -> Any:
    import openai

    return openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=timeout)


def _sdk_async_client(base_url: str, timeout: float) -> Any:
    import openai

    return openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=timeout)


async def _sdk_astream_text(client: Any) -> str:
    parts = []
    async for chunk in await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


def _sdk_stream_text(client: Any) -> str:
    parts = []
    for chunk in client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


class SDK(Contender):
    name = "sdk"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.client = _sdk_client(setup.secondary_url, setup.timeout_s)
        self._primary: Any = None
        self._async: Any = None

    def call(self) -> str:
        reply = self.client.chat.completions.create(model=MODEL, messages=MESSAGES)
        return str(reply.choices[0].message.content)

    def call_primary(self) -> bool:
        """One call to the primary; True if it answered. Times a failed round trip."""
        import openai

        if self._primary is None:
            self._primary = _sdk_client(self.setup.primary_url, self.setup.timeout_s)
        try:
            self._primary.chat.completions.create(model=MODEL, messages=MESSAGES)
        except openai.APIError:
            return False
        return True

    async def acall(self) -> str:
        if self._async is None:
            self._async = _sdk_async_client(self.setup.secondary_url, self.setup.timeout_s)
        reply = await self._async.chat.completions.create(model=MODEL, messages=MESSAGES)
        return str(reply.choices[0].message.content)

    def stream(self) -> str:
        return _sdk_stream_text(self.client)

    async def astream(self) -> str:
        if self._async is None:
            self._async = _sdk_async_client(self.setup.secondary_url, self.setup.timeout_s)
        return await _sdk_astream_text(self._async)

    def close(self) -> None:
        self.client.close()
        if self._primary is not None:
            self._primary.close()

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.close()
            self._async = None


# --- hand-written try/except ---------------------------------------------------------------


class Handwritten(Contender):
    name = "handwritten"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.primary_attempts = 0
        self.primary = _sdk_client(setup.primary_url, setup.timeout_s)
        self.secondary = _sdk_client(setup.secondary_url, setup.timeout_s)
        self._aprimary: Any = None
        self._asecondary: Any = None

    def call(self) -> str:
        import openai

        self.primary_attempts = (self.primary_attempts or 0) + 1
        try:
            reply = self.primary.chat.completions.create(model=MODEL, messages=MESSAGES)
        except openai.APIError:
            reply = self.secondary.chat.completions.create(model=MODEL, messages=MESSAGES)
        return str(reply.choices[0].message.content)

    async def acall(self) -> str:
        import openai

        if self._aprimary is None:
            self._aprimary = _sdk_async_client(self.setup.primary_url, self.setup.timeout_s)
            self._asecondary = _sdk_async_client(self.setup.secondary_url, self.setup.timeout_s)
        self.primary_attempts = (self.primary_attempts or 0) + 1
        try:
            reply = await self._aprimary.chat.completions.create(model=MODEL, messages=MESSAGES)
        except openai.APIError:
            reply = await self._asecondary.chat.completions.create(model=MODEL, messages=MESSAGES)
        return str(reply.choices[0].message.content)

    def stream(self) -> str:
        import openai

        self.primary_attempts = (self.primary_attempts or 0) + 1
        try:
            return _sdk_stream_text(self.primary)
        except openai.APIError:
            return _sdk_stream_text(self.secondary)

    async def astream(self) -> str:
        import openai

        if self._aprimary is None:
            self._aprimary = _sdk_async_client(self.setup.primary_url, self.setup.timeout_s)
            self._asecondary = _sdk_async_client(self.setup.secondary_url, self.setup.timeout_s)
        self.primary_attempts = (self.primary_attempts or 0) + 1
        try:
            return await _sdk_astream_text(self._aprimary)
        except openai.APIError:
            return await _sdk_astream_text(self._asecondary)

    def close(self) -> None:
        self.primary.close()
        self.secondary.close()

    async def aclose(self) -> None:
        if self._aprimary is not None:
            await self._aprimary.close()
            await self._asecondary.close()
            self._aprimary = self._asecondary = None


# --- failover ------------------------------------------------------------------------------


def failover_config(setup: Setup) -> dict[str, Any]:
    """The router's config, built in code as an application would."""

    def provider(url: str) -> dict[str, Any]:
        return {"type": "openai", "model": MODEL, "base_url": url, "api_key": "none",
                "timeout": f"{setup.timeout_s * 1000:g}ms"}  # fmt: skip

    breaker = dict(setup.breaker)
    if setup.variant == "nobreaker":
        breaker = {"consecutive_failures": 1_000_000_000, "min_calls": 1_000_000_000}
    chain = ["secondary"] if setup.variant == "direct" else ["primary", "secondary"]
    route: dict[str, Any] = {"chain": chain, "deadline": "10s"}
    if setup.hedge_ms is not None:
        route["hedge"] = {"after": f"{setup.hedge_ms:g}ms", "min_delay": "1ms", "max_ratio": 1.0}
    return {
        "providers": {"primary": provider(setup.primary_url),
                      "secondary": provider(setup.secondary_url)},
        "routes": {"default": route},
        "defaults": {"breaker": breaker, "retry": {"attempts": 1}},
    }  # fmt: skip


class Failover(Contender):
    name = "failover"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        import failover

        self.primary_attempts = 0
        self.router = failover.Router(failover.Config.from_mapping(failover_config(setup)))
        # What a service does at start-up: SDK imports and pools, not on the first failover.
        self.router.warm_up()
        if setup.variant == "skip":
            self.router.force_open("primary")

    def _count(self, reply: Any) -> str:
        for attempt in reply.attempts:
            if attempt.provider == "primary":
                self.primary_attempts = (self.primary_attempts or 0) + 1
        return str(reply.text)

    def call(self) -> str:
        return self._count(self.router.complete(MESSAGES))

    async def acall(self) -> str:
        return self._count(await self.router.acomplete(MESSAGES))

    def stream(self) -> str:
        reply = None
        for event in self.router.stream(MESSAGES):
            if event.type == "completed":
                reply = event.response
        if reply is None:
            raise RuntimeError("stream ended without a Completed event")
        return self._count(reply)

    async def astream(self) -> str:
        reply = None
        async for event in self.router.astream(MESSAGES):
            if event.type == "completed":
                reply = event.response
        if reply is None:
            raise RuntimeError("stream ended without a Completed event")
        return self._count(reply)

    def close(self) -> None:
        self.router.close()

    async def aclose(self) -> None:
        await self.router.aclose()


# --- LiteLLM --------------------------------------------------------------------------------


class LiteLLM(Contender):
    name = "litellm"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        # LiteLLM otherwise fetches its model price map from the network at import.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        os.environ.setdefault("LITELLM_LOG", "ERROR")
        import litellm
        from litellm.router import Router

        litellm.telemetry = False
        litellm.suppress_debug_info = True

        def deployment(group: str, url: str) -> dict[str, Any]:
            return {
                "model_name": group,
                "litellm_params": {"model": f"openai/{MODEL}", "api_base": url,
                                   "api_key": "none", "timeout": setup.timeout_s,
                                   "max_retries": 0},
            }  # fmt: skip

        self.router = Router(
            model_list=[deployment("primary", setup.primary_url),
                        deployment("secondary", setup.secondary_url)],
            fallbacks=[{"primary": ["secondary"]}],
            num_retries=0,
            timeout=setup.timeout_s,
            allowed_fails=int(setup.breaker.get("consecutive_failures", 3)) - 1,
            cooldown_time=1.0,
        )  # fmt: skip

    def call(self) -> str:
        reply = self.router.completion(model="primary", messages=MESSAGES)
        return str(reply.choices[0].message.content)

    async def acall(self) -> str:
        reply = await self.router.acompletion(model="primary", messages=MESSAGES)
        return str(reply.choices[0].message.content)

    def stream(self) -> str:
        parts = []
        for chunk in self.router.completion(model="primary", messages=MESSAGES, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    async def astream(self) -> str:
        parts = []
        chunks = await self.router.acompletion(model="primary", messages=MESSAGES, stream=True)
        async for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)


# --- LangChain ------------------------------------------------------------------------------


class LangChain(Contender):
    name = "langchain"

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        from langchain_openai import ChatOpenAI

        def chat(url: str) -> Any:
            key: Any = "none"
            return ChatOpenAI(model=MODEL, base_url=url, api_key=key, max_retries=0,
                              timeout=setup.timeout_s)  # fmt: skip

        self.chain = chat(setup.primary_url).with_fallbacks([chat(setup.secondary_url)])

    def call(self) -> str:
        return str(self.chain.invoke(MESSAGES).content)

    async def acall(self) -> str:
        return str((await self.chain.ainvoke(MESSAGES)).content)

    def stream(self) -> str:
        return "".join(str(chunk.content) for chunk in self.chain.stream(MESSAGES))

    async def astream(self) -> str:
        return "".join([str(chunk.content) async for chunk in self.chain.astream(MESSAGES)])


_CLASSES: dict[str, type[Contender]] = {
    "sdk": SDK,
    "handwritten": Handwritten,
    "failover": Failover,
    "litellm": LiteLLM,
    "langchain": LangChain,
}


def build(name: str, setup: Setup) -> Contender:
    """``name`` is a contender, optionally ``failover:<variant>``."""
    base, _, variant = name.partition(":")
    if variant:
        setup.variant = variant
    contender = _CLASSES[base](setup)
    contender.name = name
    return contender
