"""Provider adapters, one per file, looked up by config ``type`` and imported lazily.

Importing this package imports no SDK: `adapter_class` imports the adapter module (and
so its SDK) the first time a provider of that type is built.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._config import ProviderConfig, TimeoutsConfig
    from ._base import ProviderAdapter

__all__ = ["ADAPTERS", "adapter_class", "build_adapter"]

#: config ``type`` (``type/platform`` for a model its maker's cloud does not serve) ->
#: "module:ClassName" inside this package.
ADAPTERS: dict[str, str] = {
    "openai": "openai:OpenAIAdapter",
    "azure": "azure:AzureOpenAIAdapter",
    "anthropic": "anthropic:AnthropicAdapter",
    "anthropic/bedrock": "anthropic_bedrock:BedrockAdapter",
    "anthropic/vertex": "anthropic_vertex:VertexAnthropicAdapter",
    "gemini": "gemini:GeminiAdapter",
    "gemini/vertex": "gemini_vertex:GeminiVertexAdapter",
    "fake": "fake:FakeAdapter",
}


def adapter_class(provider_type: str, platform: str | None = None) -> type[ProviderAdapter]:
    key = provider_type if platform is None else f"{provider_type}/{platform}"
    module_name, _, class_name = ADAPTERS[key].partition(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    cls: type[ProviderAdapter] = getattr(module, class_name)
    return cls


def build_adapter(name: str, config: ProviderConfig, timeouts: TimeoutsConfig) -> ProviderAdapter:
    return adapter_class(config.type, config.platform)(name, config, timeouts)
