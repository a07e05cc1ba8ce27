"""Azure OpenAI: the OpenAI adapter over the openai SDK's Azure clients.

The wire format is OpenAI's Chat Completions at the deployment's URL
(``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...``), so
translation, streams and errors are the OpenAI adapter's. What is Azure's own:

- Authentication: an ``api_key`` (a pool, as for any provider, sent as ``api-key``), or
  Microsoft Entra ID: a service principal (``tenant_id``/``client_id``/``client_secret``)
  or ``entra_id: default`` (DefaultAzureCredential: environment, workload or managed
  identity, Azure CLI) through azure-identity (the ``azure`` extra), whose token is
  cached and refreshed before it expires; or a static ``access_token``. Tokens are
  fetched through the provider's seam (see `_clouds`).
- Content filtering: a 400 with ``code: content_filter`` and a 200 whose choice finished
  with ``content_filter`` are both `ContentFiltered` (the OpenAI adapter's mapping).
- ``retry-after-ms`` is read before ``retry-after`` (the base's `parse_retry_after`).
- ``max_completion_tokens`` is sent, not the deprecated ``max_tokens`` (Azure's
  reasoning deployments refuse it, as OpenAI's do).

The environment is never read behind the config's back: endpoint, deployment, API
version and credentials are all given to the SDK explicitly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import openai

from ._clouds import static_token
from .openai import OpenAIAdapter

if TYPE_CHECKING:
    import httpx2

__all__ = ["DEFAULT_API_VERSION", "AzureOpenAIAdapter"]

#: The GA API version sent when the config gives none.
DEFAULT_API_VERSION = "2024-10-21"


class AzureOpenAIAdapter(OpenAIAdapter):
    """``type: azure``: a deployment of an Azure OpenAI resource."""

    _token_provider: Callable[[], str] | None = None

    @property
    def base_url(self) -> str:
        return (self.config.base_url or "").rstrip("/")

    def _uses_openai_itself(self) -> bool:
        return True  # Azure takes max_completion_tokens, as OpenAI does

    def _azure_auth(self, api_key: str | None) -> dict[str, Any]:
        given = self.config.credentials
        if given is None:
            return {"api_key": api_key}
        token = static_token(given, self.name)
        if token is not None:
            return {"azure_ad_token": token}
        if self._token_provider is None:
            from ._clouds import entra_token_provider

            session = self._token_session()
            self._token_provider = entra_token_provider(given, self.name, session)
        return {"azure_ad_token_provider": self._token_provider}

    def _azure_kwargs(self, api_key: str | None, *, auth: bool = True) -> dict[str, Any]:
        return {
            **(self._azure_auth(api_key) if auth else {"api_key": api_key}),
            "azure_endpoint": self.base_url,
            "azure_deployment": self.config.deployment or self.model,
            "api_version": self.config.api_version or DEFAULT_API_VERSION,
            "max_retries": 0,
            "default_headers": self.headers() or None,
        }

    def _make_sync_client(self, api_key: str | None, http_client: httpx2.Client) -> Any:
        return openai.AzureOpenAI(http_client=http_client, **self._azure_kwargs(api_key))

    def _make_async_client(self, api_key: str | None, http_client: httpx2.AsyncClient) -> Any:
        kwargs = self._azure_kwargs(api_key)
        fetch = kwargs.get("azure_ad_token_provider")
        if fetch is not None:
            # azure-identity's provider blocks while it fetches (rarely: the token is
            # cached): in a worker thread, so the event loop never waits on it.
            async def token() -> str:
                return await asyncio.to_thread(fetch)

            kwargs["azure_ad_token_provider"] = token
        return openai.AsyncAzureOpenAI(http_client=http_client, **kwargs)

    def _primer_client(self, http_client: httpx2.Client) -> Any:
        # A canned key: priming must never fetch a token (it is offline).
        return openai.AzureOpenAI(http_client=http_client,
                                  **self._azure_kwargs("primer-key", auth=False))
