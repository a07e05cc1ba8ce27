"""Cloud credentials for the adapters of Azure, Bedrock and Vertex: secrets and tokens.

What the SDKs would do on their own, done so the library keeps its promises:

- Every value in ``credentials`` may be a ``${VAR}``; it is resolved when the provider is
  first used, registered as a secret (scrubbed from every output), and a missing one
  fails the attempt with `AuthenticationFailed` naming the variable, never the request.
- Tokens are fetched over the provider's own seam: google-auth and azure-identity speak
  ``requests``, so they get a ``requests`` session whose adapter sends through an
  ``httpx2`` client on the provider's `SeamTransport`. The test kit then answers token
  endpoints like any other request (no network in tests), and a token endpoint that is
  down is the provider's `ConnectionFailed`, not a traceback.
- Every token fetched is registered as a secret before anyone can print it.

google-auth, requests and azure-identity are imported only when a provider needs them.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx2

from .._config import resolve_env
from .._errors import AuthenticationFailed, ConfigError, ConnectionFailed, ProviderError
from .._secrets import register

if TYPE_CHECKING:
    from pydantic import SecretStr

    from .._config import CredentialsConfig

__all__ = [
    "AZURE_SCOPE",
    "GOOGLE_SCOPE",
    "entra_token_provider",
    "google_credentials",
    "map_credential_error",
    "seam_session",
    "secret",
    "static_token",
]

GOOGLE_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"


def secret(value: SecretStr | str | None, where: str, provider: str) -> str | None:
    """A credential's value with ``${VAR}`` expanded, registered as a secret."""
    if value is None:
        return None
    raw = value if isinstance(value, str) else value.get_secret_value()
    try:
        resolved = resolve_env(raw, where)
    except ConfigError as exc:
        raise AuthenticationFailed(exc.problems[0], provider=provider,
                                   code="missing_credential") from None
    register(resolved)
    return resolved


def static_token(given: CredentialsConfig | None, provider: str) -> str | None:
    """``credentials.access_token``: a bearer token given as is (never refreshed)."""
    if given is None:
        return None
    return secret(given.access_token, f"providers.{provider}.credentials.access_token",
                  provider)


# --- requests over the seam -------------------------------------------------------------


def seam_session(transport: httpx2.BaseTransport, timeout: float) -> Any:
    """A ``requests.Session`` whose every request goes out through ``transport``."""
    import requests
    from requests.adapters import BaseAdapter

    client = httpx2.Client(transport=transport, timeout=timeout)

    class _SeamAdapter(BaseAdapter):  # type: ignore[misc,unused-ignore]
        def send(self, request: Any, stream: bool = False, timeout: Any = None,
                 verify: Any = True, cert: Any = None, proxies: Any = None) -> Any:
            body = request.body.encode() if isinstance(request.body, str) else request.body
            try:
                answer = client.request(request.method, request.url, content=body or b"",
                                        headers=dict(request.headers))
            except httpx2.TransportError as exc:
                raise requests.ConnectionError(f"{type(exc).__name__}: {exc}") from None
            return _requests_response(answer, request)

        def close(self) -> None:
            client.close()

    session = requests.Session()
    session.trust_env = False  # a proxy or netrc of the environment never joins in
    for prefix in ("https://", "http://"):
        session.mount(prefix, _SeamAdapter())
    return session


def _requests_response(answer: httpx2.Response, request: Any) -> Any:
    import requests
    import urllib3

    headers = dict(answer.headers.items())
    response = requests.Response()
    response.status_code = answer.status_code
    response.reason = answer.reason_phrase
    response.url = request.url
    response.request = request
    response.headers = requests.structures.CaseInsensitiveDict(headers)
    # Readers differ: google-auth reads ``.content``, azure-core streams ``.raw``.
    response.raw = urllib3.HTTPResponse(body=io.BytesIO(answer.content), headers=headers,
                                        status=answer.status_code, preload_content=False,
                                        decode_content=False)
    return response


# --- Google -------------------------------------------------------------------------------


def google_credentials(given: CredentialsConfig | None, provider: str, session: Any) -> Any:
    """Credentials for Vertex AI: a static ``access_token``, a service-account file, or
    application default credentials; refreshed through ``session`` (the seam)."""
    where = f"providers.{provider}.credentials"
    token = static_token(given, provider)
    if token is not None:
        from google.oauth2.credentials import Credentials

        return Credentials(token=token)  # type: ignore[no-untyped-call]
    inner = _google_inner(given, where, provider)
    return _seam_credentials_class()(inner, session)


def _google_inner(given: CredentialsConfig | None, where: str, provider: str) -> Any:
    import google.auth
    from google.auth import exceptions as google_errors
    from google.oauth2 import service_account

    path = given.service_account_file if given is not None else None
    try:
        if path is not None:
            path = resolve_env(path, f"{where}.service_account_file")
            return service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                path, scopes=[GOOGLE_SCOPE])
        credentials, _ = google.auth.default(scopes=[GOOGLE_SCOPE])
        return credentials
    except ConfigError as exc:
        raise AuthenticationFailed(exc.problems[0], provider=provider,
                                   code="missing_credential") from None
    except (OSError, ValueError, google_errors.GoogleAuthError) as exc:
        why = getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}"
        what = f"{where}.service_account_file: cannot use {path}" if path else (
            "no application default credentials")
        raise AuthenticationFailed(f"{what}: {why}", provider=provider,
                                   code="missing_credential") from None


_SEAM_CREDENTIALS: type | None = None


def _seam_credentials_class() -> type:
    """`google.auth` credentials that refresh their inner credentials through the seam,
    whatever transport the SDK hands to ``refresh`` (google-genai builds its own)."""
    global _SEAM_CREDENTIALS
    if _SEAM_CREDENTIALS is None:
        from google.auth import credentials as google_credentials_module
        from google.auth.transport.requests import Request

        class SeamCredentials(google_credentials_module.Credentials):  # type: ignore[misc,unused-ignore]
            def __init__(self, inner: Any, session: Any) -> None:
                super().__init__()  # type: ignore[no-untyped-call]
                self._inner = inner
                self._request = Request(session=session)
                self._lock = threading.Lock()

            def refresh(self, request: Any) -> None:
                with self._lock:
                    self._inner.refresh(self._request)
                    register(self._inner.token)
                    self.token = self._inner.token
                    self.expiry = self._inner.expiry

        _SEAM_CREDENTIALS = SeamCredentials
    return _SEAM_CREDENTIALS


# --- Azure --------------------------------------------------------------------------------


def entra_token_provider(given: CredentialsConfig, provider: str,
                         session: Any) -> Callable[[], str]:
    """A callable giving a current Microsoft Entra ID token for Azure OpenAI (cached and
    refreshed before it expires by azure-identity), fetched through ``session``."""
    try:
        import azure.identity as identity
        from azure.core.pipeline.transport import RequestsTransport
    except ImportError:
        raise AuthenticationFailed(
            f"providers.{provider}.credentials: Microsoft Entra ID needs azure-identity "
            "(pip install 'failover[azure]')", provider=provider,
            code="missing_dependency") from None
    where = f"providers.{provider}.credentials"
    transport = RequestsTransport(session=session, session_owner=False)
    options: dict[str, Any] = {"transport": transport}
    if given.entra_id == "default":
        credential: Any = identity.DefaultAzureCredential(**options)
    else:
        credential = identity.ClientSecretCredential(
            secret(given.tenant_id, f"{where}.tenant_id", provider) or "",
            secret(given.client_id, f"{where}.client_id", provider) or "",
            secret(given.client_secret, f"{where}.client_secret", provider) or "",
            **options)
    fetch = identity.get_bearer_token_provider(credential, AZURE_SCOPE)

    def token() -> str:
        value: str = fetch()
        register(value)
        return value

    return token


# --- errors -------------------------------------------------------------------------------


def map_credential_error(exc: BaseException, provider: str) -> ProviderError | None:
    """What google-auth, azure-identity and requests raise while getting a token: an
    endpoint that cannot be reached (anywhere in the chain of causes: azure-identity
    wraps it in an authentication error) is `ConnectionFailed`, a refusal
    `AuthenticationFailed`."""
    module = type(exc).__module__
    if not module.startswith(("google.auth", "azure.", "requests", "msal")):
        return None
    if any(_unreachable(cause) for cause in _causes(exc)):
        return ConnectionFailed(f"token endpoint unreachable: {_first_line(exc)}",
                                provider=provider)
    name = type(exc).__name__
    if "Refresh" in name or "Authentication" in name or "Credential" in name:
        return AuthenticationFailed(f"could not get a token: {_first_line(exc)}",
                                    provider=provider, code="token")
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _unreachable(exc: BaseException) -> bool:
    name, module = type(exc).__name__, type(exc).__module__
    return (module.startswith("requests") and name in (
        "ConnectionError", "Timeout", "ConnectTimeout", "ReadTimeout")) or (
        module.startswith("google.auth") and name == "TransportError") or (
        module.startswith("azure.") and name in ("ServiceRequestError",
                                                 "ServiceResponseError"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."
