"""Claude on Google Vertex AI: the Anthropic adapter over the anthropic SDK's Vertex clients.

The Messages API's bodies and SSE events are the same; what is Vertex's own:

- URL: ``/projects/{project}/locations/{region}/publishers/anthropic/models/{model}``
  with ``:rawPredict`` (``:streamRawPredict`` for streams); the model is in the URL and
  ``anthropic_version`` in the body (the SDK does both).
- Auth: a Google OAuth token from ``credentials.service_account_file``, application
  default credentials, or a static ``credentials.access_token``; fetched and refreshed
  through the provider's seam (`_clouds.google_credentials`).
- Errors in Google's shape (``{"error": {"code", "message", "status"}}``): quota
  (RESOURCE_EXHAUSTED) is `RateLimited`, PERMISSION_DENIED `PermissionDenied`, a
  FAILED_PRECONDITION (the project may not use the model, billing) `PermissionDenied`
  too; errors Vertex passes on from Anthropic (``overloaded_error``) keep their kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anthropic
import httpx2

from .._errors import PermissionDenied, ProviderError
from ._base import error_from_status
from ._clouds import google_credentials, static_token
from .anthropic import AnthropicAdapter

__all__ = ["VertexAnthropicAdapter", "google_error"]


class VertexAnthropicAdapter(AnthropicAdapter):
    """``type: anthropic`` with ``platform: vertex``."""

    _credentials: Any = None

    def _auth(self) -> dict[str, Any]:
        token = static_token(self.config.credentials, self.name)
        if token is not None:
            return {"access_token": token}
        if self._credentials is None:
            session = self._token_session()
            self._credentials = google_credentials(self.config.credentials, self.name,
                                                   session)
        return {"credentials": self._credentials}

    def _vertex_kwargs(self) -> dict[str, Any]:
        return {
            **self._auth(),
            "region": self.config.region,
            "project_id": self.config.project,
            "base_url": self.config.base_url,
            "max_retries": 0,
            "timeout": httpx2.Timeout(self.timeouts.request, connect=self.timeouts.connect),
            "default_headers": self.headers(),
        }

    def _make_sync_client(self, api_key: str | None, http_client: httpx2.Client) -> Any:
        return anthropic.AnthropicVertex(http_client=http_client, **self._vertex_kwargs())

    def _make_async_client(self, api_key: str | None, http_client: httpx2.AsyncClient) -> Any:
        return anthropic.AsyncAnthropicVertex(http_client=http_client, **self._vertex_kwargs())

    def _primer_client(self, http_client: httpx2.Client) -> Any:
        return anthropic.AnthropicVertex(
            http_client=http_client, access_token="primer-token", max_retries=0,
            region=self.config.region or "global", project_id=self.config.project or "primer")

    # -- errors ------------------------------------------------------------------------

    def _map_error(self, exc: BaseException) -> ProviderError | None:
        if isinstance(exc, anthropic.APIStatusError) and exc.status_code != 200:
            found = google_error(exc.body, exc.status_code, provider=self.name,
                                 headers=exc.response.headers)
            if found is not None:
                return found
        return super()._map_error(exc)


def google_error(body: Any, status: int, *, provider: str,
                 headers: Mapping[str, str] | None = None) -> ProviderError | None:
    """A Google API error body (``{"error": {"code", "message", "status"}}``) as one kind;
    None if ``body`` is not one."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping) or not isinstance(error.get("status"), str):
        return None
    rpc_status = str(error["status"])
    message = f"{rpc_status}: {error.get('message') or f'HTTP {status}'}"
    if status == 400 and rpc_status == "FAILED_PRECONDITION":
        # The project may not use this model here (not enabled, no billing): another
        # provider can serve the same request.
        return PermissionDenied(message, provider=provider, status=status, code=rpc_status)
    return error_from_status(status, message, provider=provider, headers=headers,
                             code=rpc_status)
