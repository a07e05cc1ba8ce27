"""Claude on Amazon Bedrock: the Anthropic adapter over the anthropic SDK's Bedrock clients.

The Messages API's bodies and events are the same; what differs is Bedrock's:

- URL and auth: ``/model/{model}/invoke`` (``invoke-with-response-stream`` for streams),
  signed with SigV4 by the SDK through botocore. Credentials come from ``credentials``
  (``aws_access_key_id``/``aws_secret_access_key``/``aws_session_token``, or
  ``aws_profile``) or, where it leaves them out, AWS's standard chain (environment,
  shared files, role). A Bedrock API key (``api_key``) is sent as a bearer token instead.
  With no credentials at all the attempt fails as `AuthenticationFailed` before sending.
- Streams are AWS event-stream frames, each carrying one Messages event; an exception
  frame mid-stream (``throttlingException``...) is mapped by its type.
- Errors carry their type in ``x-amzn-ErrorType`` (the body has only a ``message``):
  ThrottlingException and ServiceQuotaExceededException are `RateLimited`,
  ServiceUnavailableException and ModelNotReadyException `Overloaded`,
  ModelTimeoutException `Timeout`, ValidationException `BadRequest` (or the context
  window / content kinds its message names), AccessDeniedException `PermissionDenied`,
  UnrecognizedClientException and the signature errors `AuthenticationFailed`,
  ResourceNotFoundException `ModelNotFound`, InternalServerException,
  ModelErrorException and ModelStreamErrorException `ServerError`.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2

from .._errors import AuthenticationFailed, ProviderError
from ._base import error_from_status
from ._clouds import secret
from .anthropic import AnthropicAdapter

__all__ = ["BEDROCK_ERROR_STATUS", "BedrockAdapter"]

#: Bedrock's error types, read as the status whose kind they are. The wire's own status
#: can mislead: ModelNotReadyException comes as a 429 and is no quota; a
#: ServiceQuotaExceededException comes as a 400 and is one.
BEDROCK_ERROR_STATUS: dict[str, int] = {
    "throttlingexception": 429,
    "servicequotaexceededexception": 429,
    "serviceunavailableexception": 503,
    "modelnotreadyexception": 503,
    "modeltimeoutexception": 408,
    "validationexception": 400,
    "accessdeniedexception": 403,
    "unrecognizedclientexception": 401,
    "invalidsignatureexception": 401,
    "expiredtokenexception": 401,
    "resourcenotfoundexception": 404,
    "internalserverexception": 500,
    "modelerrorexception": 500,
    "modelstreamerrorexception": 500,
}


class BedrockAdapter(AnthropicAdapter):
    """``type: anthropic`` with ``platform: bedrock``."""

    def _bedrock_kwargs(self, api_key: str | None) -> dict[str, Any]:
        given = self.config.credentials
        where = f"providers.{self.name}.credentials"
        aws: dict[str, Any] = {}
        if given is not None:
            aws = {
                "aws_access_key": secret(given.aws_access_key_id,
                                         f"{where}.aws_access_key_id", self.name),
                "aws_secret_key": secret(given.aws_secret_access_key,
                                         f"{where}.aws_secret_access_key", self.name),
                "aws_session_token": secret(given.aws_session_token,
                                            f"{where}.aws_session_token", self.name),
                "aws_profile": given.aws_profile,
            }
        if api_key is None:
            self._check_aws_chain(aws)
        return {
            **{k: v for k, v in aws.items() if v is not None},
            "api_key": api_key,
            "aws_region": self.config.region,
            "base_url": self.config.base_url,
            "max_retries": 0,
            "timeout": httpx2.Timeout(self.timeouts.request, connect=self.timeouts.connect),
            "default_headers": self.headers(),
        }

    def _check_aws_chain(self, aws: dict[str, Any]) -> None:
        """Fail the attempt now, naming what to set, when AWS finds no credentials."""
        try:
            import boto3
            import botocore.exceptions
        except ImportError:
            raise AuthenticationFailed(
                f"providers.{self.name}: platform: bedrock signs with botocore, which is "
                "not installed (pip install 'failover[bedrock]')", provider=self.name,
                code="missing_dependency") from None

        try:
            found = boto3.Session(
                profile_name=aws.get("aws_profile"), region_name=self.config.region,
                aws_access_key_id=aws.get("aws_access_key"),
                aws_secret_access_key=aws.get("aws_secret_key"),
                aws_session_token=aws.get("aws_session_token"),
            ).get_credentials()
        except botocore.exceptions.BotoCoreError as exc:
            raise AuthenticationFailed(f"AWS credentials: {exc}", provider=self.name,
                                       code="missing_credential") from None
        if found is None:
            raise AuthenticationFailed(
                f"providers.{self.name}: no AWS credentials found (give credentials."
                "aws_access_key_id and aws_secret_access_key or aws_profile, or set them "
                "in the environment, a shared credentials file or a role)",
                provider=self.name, code="missing_credential")

    def _make_sync_client(self, api_key: str | None, http_client: httpx2.Client) -> Any:
        return anthropic.AnthropicBedrock(http_client=http_client,
                                          **self._bedrock_kwargs(api_key))

    def _make_async_client(self, api_key: str | None, http_client: httpx2.AsyncClient) -> Any:
        return anthropic.AsyncAnthropicBedrock(http_client=http_client,
                                               **self._bedrock_kwargs(api_key))

    def _primer_client(self, http_client: httpx2.Client) -> Any:
        # Canned keys: signing is local, so priming loads botocore without credentials.
        return anthropic.AnthropicBedrock(
            http_client=http_client, aws_access_key="primer", aws_secret_key="primer",
            aws_region=self.config.region or "us-east-1", max_retries=0)

    # -- errors ------------------------------------------------------------------------

    def _map_error(self, exc: BaseException) -> ProviderError | None:
        if isinstance(exc, anthropic.APIStatusError) and exc.status_code != 200:
            kind = exc.response.headers.get("x-amzn-errortype", "").split(":", 1)[0]
            status = BEDROCK_ERROR_STATUS.get(kind.lower())
            if status is not None:
                err = error_from_status(status, _bedrock_message(exc), provider=self.name,
                                        headers=exc.response.headers, code=kind)
                err.status = exc.status_code
                return err
        return super()._map_error(exc)

    def _stream_error_event(self, message: str, code: str | None) -> ProviderError:
        """An exception frame inside the event stream, by its Bedrock type."""
        status = BEDROCK_ERROR_STATUS.get((code or "").lower())
        if status is None:
            return super()._stream_error_event(message, code)
        err = error_from_status(status, f"error event in stream: {message}",
                                provider=self.name, code=code)
        err.status = None  # the HTTP status was 200; the kind says what went wrong
        return err


def _bedrock_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("Message")
        if isinstance(message, str) and message:
            return message
    return exc.message or f"HTTP {exc.status_code}"
