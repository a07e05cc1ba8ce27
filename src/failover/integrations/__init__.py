"""Where applications already are: adapters from `failover` to the APIs they use.

Each module is a leaf on the public `failover` API and imports its framework, an
optional extra, when it is imported (``import failover`` never imports any of them):

- `failover.integrations.openai`: ``OpenAI(router)`` / ``AsyncOpenAI(router)``, the
  openai SDK's ``chat.completions`` interface over a router (the SDK is a dependency);
- `failover.integrations.pydantic_ai`: a pydantic-ai ``Model`` (``failover[pydantic-ai]``);
- `failover.integrations.langchain`: a LangChain ``BaseChatModel`` (``failover[langchain]``);
- `failover.integrations.prometheus`: Prometheus metrics (``failover[prometheus]``).

OpenTelemetry is built into the router itself (see `failover.OpenTelemetryInstrumentation`).
"""
