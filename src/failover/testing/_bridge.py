"""The bridge between respx (which speaks legacy ``httpx``) and the SDKs' ``httpx2``.

`RespxTransport` is a `TransportOverride`: install it with
``failover.providers._base.override_transport`` and every provider request is converted
to an ``httpx.Request``, handed to a ``respx.Router`` for matching and recording, and the
``httpx.Response`` (streaming bodies included) converted back. Exceptions that respx
side effects raise as ``httpx.*`` come out as their ``httpx2.*`` namesakes, so adapters
see exactly what a real socket would give them. Each request carries the header
``x-failover-provider`` with the config name of the provider that sent it, so routes can
match on the provider as well as on the URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import httpx2
import respx

__all__ = ["PROVIDER_HEADER", "RespxTransport", "to_httpx2_error"]

PROVIDER_HEADER = "x-failover-provider"


def to_httpx2_error(exc: BaseException) -> BaseException:
    """``httpx.ConnectError`` -> ``httpx2.ConnectError`` and so on; others unchanged."""
    if isinstance(exc, httpx.HTTPError):
        cls = getattr(httpx2, type(exc).__name__, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            try:
                return cls(str(exc))
            except TypeError:
                return httpx2.TransportError(str(exc))
        return httpx2.TransportError(str(exc))
    return exc


def _to_httpx_request(request: httpx2.Request, provider: str) -> httpx.Request:
    body = request.read()
    headers = [(k, v) for k, v in request.headers.multi_items()]
    headers.append((PROVIDER_HEADER, quote(provider)))  # header values are ASCII
    return httpx.Request(request.method, str(request.url), headers=headers, content=body)


class _SyncBody(httpx2.SyncByteStream):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        stream: Any = self._response.stream
        try:
            yield from stream
        except httpx.HTTPError as exc:
            raise to_httpx2_error(exc) from None

    def close(self) -> None:
        close = getattr(self._response.stream, "close", None)
        if close is not None:
            close()


class _AsyncBody(httpx2.AsyncByteStream):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        stream: Any = self._response.stream
        try:
            if hasattr(stream, "__aiter__"):
                async for chunk in stream:
                    yield chunk
            else:
                for chunk in stream:
                    yield chunk
        except httpx.HTTPError as exc:
            raise to_httpx2_error(exc) from None

    async def aclose(self) -> None:
        aclose = getattr(self._response.stream, "aclose", None)
        if aclose is not None:
            await aclose()


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    # The body is re-streamed as-is; a stale content-length would make httpx2 complain
    # when a fault cuts it short, and content-encoding was already applied by respx.
    return [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
    ]


class RespxTransport:
    """A `TransportOverride` that answers through a ``respx.Router``."""

    def __init__(self, router: respx.Router | None = None) -> None:
        self.router = router if router is not None else respx.Router(assert_all_called=False)

    def handle_request(self, request: httpx2.Request, provider: str) -> httpx2.Response:
        try:
            response = self.router.handler(_to_httpx_request(request, provider))
        except httpx.HTTPError as exc:
            raise to_httpx2_error(exc) from None
        return httpx2.Response(
            response.status_code,
            headers=_headers(response),
            stream=_SyncBody(response),
            request=request,
        )

    async def handle_async_request(
        self, request: httpx2.Request, provider: str
    ) -> httpx2.Response:
        try:
            response = await self.router.async_handler(_to_httpx_request(request, provider))
        except httpx.HTTPError as exc:
            raise to_httpx2_error(exc) from None
        return httpx2.Response(
            response.status_code,
            headers=_headers(response),
            stream=_AsyncBody(response),
            request=request,
        )
