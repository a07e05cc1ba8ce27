"""Gemini on Google Vertex AI: the Gemini adapter over google-genai with ``vertexai=True``.

Bodies, streams and most errors are the Developer API's; what is Vertex's own:

- URL: ``{location}-aiplatform.googleapis.com/v1beta1/projects/{project}/locations/
  {location}/publishers/google/models/{model}:generateContent`` (the SDK builds it from
  ``project`` and ``region``; ``global`` uses ``aiplatform.googleapis.com``).
- Auth: a Google OAuth token, never an API key: ``credentials.service_account_file``,
  application default credentials, or a static ``credentials.access_token``; fetched
  and refreshed through the provider's seam (`_clouds.google_credentials`). The SDK's
  own lookups (``GOOGLE_CLOUD_PROJECT``, ``GOOGLE_API_KEY``...) are never consulted:
  project, location and credentials are given explicitly.
"""

from __future__ import annotations

from typing import Any

import httpx2
from google import genai
from google.genai import types

from ._clouds import google_credentials
from .gemini import GeminiAdapter

__all__ = ["GeminiVertexAdapter"]


class GeminiVertexAdapter(GeminiAdapter):
    """``type: gemini`` with ``platform: vertex``."""

    _credentials: Any = None

    def _base_url(self) -> str | None:
        return self.config.base_url  # None: the SDK's regional Vertex endpoint

    def _google_credentials(self) -> Any:
        if self._credentials is None:
            # A static token too: google-genai takes credentials only.
            session = self._token_session()
            self._credentials = google_credentials(self.config.credentials, self.name,
                                                   session)
        return self._credentials

    def _genai_auth(self, api_key: str | None) -> dict[str, Any]:
        return {"vertexai": True, "project": self.config.project,
                "location": self.config.region, "credentials": self._google_credentials()}

    def _primer_client(self, http_client: httpx2.Client) -> Any:
        from google.oauth2.credentials import Credentials

        idle = httpx2.AsyncClient(transport=self.transport)
        self._http_clients.append(idle)
        options = types.HttpOptions(httpx_client=http_client, httpx_async_client=idle,
                                    retry_options=types.HttpRetryOptions(attempts=1))
        return genai.Client(vertexai=True, project=self.config.project or "primer",
                            location=self.config.region or "global",
                            credentials=Credentials(token="primer-token"),  # type: ignore[no-untyped-call]
                            http_options=options)
