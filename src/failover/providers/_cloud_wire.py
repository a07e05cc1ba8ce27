"""What the clouds change in a maker's wire format, as bytes: for the test kit.

Azure OpenAI, Claude on Bedrock and on Vertex AI, and Gemini on Vertex AI answer with
their maker's bodies (`_wire`), but frame, fail and authenticate their own way:

- Bedrock streams each Messages event as an AWS event-stream frame (binary: a prelude
  with lengths and a CRC32, ``:event-type``/``:message-type`` headers, a JSON payload
  ``{"bytes": base64(event)}``, a message CRC32), and sends exceptions mid-stream as
  frames with ``:message-type: exception``. Its errors carry the type in
  ``x-amzn-ErrorType`` and only a ``message`` in the body.
- Vertex AI fails in Google's shape, ``{"error": {"code", "message", "status"}}``.
- Azure adds ``retry-after-ms`` to a 429, and refuses a prompt its content filter
  catches with a 400 whose ``code`` is ``content_filter``.
- Token endpoints: Google's OAuth token endpoint and Microsoft Entra ID's discovery and
  token endpoints, answered with a token.

No SDK is imported here; botocore reads these frames in the tests, as it would AWS's.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "BEDROCK_ERRORS",
    "EVENT_STREAM_CONTENT_TYPE",
    "GOOGLE_STATUS",
    "azure_content_filter_body",
    "bedrock_error",
    "bedrock_frames",
    "event_frame",
    "google_error_body",
    "token_answer",
    "token_endpoint",
]

EVENT_STREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"

#: HTTP status -> (Bedrock error type, the status Bedrock sends it with).
BEDROCK_ERRORS: dict[int, tuple[str, int]] = {
    400: ("ValidationException", 400),
    401: ("UnrecognizedClientException", 403),
    403: ("AccessDeniedException", 403),
    404: ("ResourceNotFoundException", 404),
    408: ("ModelTimeoutException", 408),
    413: ("ValidationException", 400),
    429: ("ThrottlingException", 429),
    500: ("InternalServerException", 500),
    503: ("ServiceUnavailableException", 503),
    529: ("ServiceUnavailableException", 503),
}

#: HTTP status -> google.rpc status name.
GOOGLE_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
    529: "UNAVAILABLE",
}


# --- AWS event stream ---------------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    # name length (1 byte), name, value type 7 (string), value length (2 bytes), value
    return (struct.pack(">B", len(raw_name)) + raw_name + b"\x07"
            + struct.pack(">H", len(raw_value)) + raw_value)


def event_frame(payload: bytes, headers: Iterable[tuple[str, str]]) -> bytes:
    """One AWS event-stream message: prelude, prelude CRC, headers, payload, message CRC."""
    head = b"".join(_header(name, value) for name, value in headers)
    total = 4 + 4 + 4 + len(head) + len(payload) + 4
    prelude = struct.pack(">II", total, len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _chunk_frame(event: Any) -> bytes:
    encoded = base64.b64encode(json.dumps(event, separators=(",", ":")).encode()).decode()
    return event_frame(json.dumps({"bytes": encoded}).encode(), (
        (":event-type", "chunk"), (":content-type", "application/json"),
        (":message-type", "event")))


def _exception_frame(kind: str, message: str) -> bytes:
    return event_frame(json.dumps({"message": message}).encode(), (
        (":exception-type", kind), (":content-type", "application/json"),
        (":message-type", "exception")))


_SSE_DATA = re.compile(rb"^data: ?(.*)$", re.MULTILINE)


def bedrock_frames(sse_event: bytes) -> bytes:
    """An Anthropic SSE event (``event: ...\\ndata: {...}``) as Bedrock frames; an
    ``error`` event becomes an exception frame, data that does not parse a chunk whose
    bytes do not parse either (a malformed event stays malformed)."""
    out = []
    for data in _SSE_DATA.findall(sse_event):
        try:
            event = json.loads(data)
        except ValueError:
            payload = json.dumps({"bytes": base64.b64encode(data).decode()}).encode()
            out.append(event_frame(payload, ((":event-type", "chunk"),
                                             (":message-type", "event"))))
            continue
        if isinstance(event, dict) and event.get("type") == "error":
            error = event.get("error") or {}
            kind = {"overloaded_error": "serviceUnavailableException",
                    "rate_limit_error": "throttlingException"}.get(
                        str(error.get("type")), "internalServerException")
            out.append(_exception_frame(kind, str(error.get("message", "error"))))
        else:
            out.append(_chunk_frame(event))
    return b"".join(out)


def bedrock_error(status: int, message: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Status, headers and body of a Bedrock error for what ``status`` means."""
    kind, sent = BEDROCK_ERRORS.get(status, (
        "InternalServerException" if status >= 500 else "ValidationException",
        status if status >= 500 else 400))
    headers = {"x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
               "x-amzn-requestid": "simulated-request"}
    return sent, headers, {"message": message}


# --- Google, Azure ----------------------------------------------------------------------


def google_error_body(status: int, message: str) -> dict[str, Any]:
    name = GOOGLE_STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {"error": {"code": status, "message": message, "status": name}}


def azure_content_filter_body() -> dict[str, Any]:
    """Azure's 400 for a prompt its content filter caught."""
    return {"error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
                   "content management policy. (simulated)",
        "type": None, "param": "prompt", "code": "content_filter", "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
            "hate": {"filtered": False, "severity": "safe"},
            "violence": {"filtered": True, "severity": "high"}}},
    }}


# --- token endpoints --------------------------------------------------------------------


def token_endpoint(url: str) -> str | None:
    """``google``, ``entra-discovery`` or ``entra`` for a token endpoint's URL; else None."""
    parts = urlsplit(url)
    host, path = (parts.hostname or "").lower(), parts.path
    if host == "oauth2.googleapis.com" and path == "/token":
        return "google"
    if host == "login.microsoftonline.com":
        if path.endswith("/.well-known/openid-configuration"):
            return "entra-discovery"
        if path.endswith("/oauth2/v2.0/token"):
            return "entra"
    return None


def token_answer(kind: str, url: str, token: str, expires_in: int) -> dict[str, Any]:
    """What the endpoint answers: the discovery document, or a bearer token."""
    if kind == "entra-discovery":
        tenant = urlsplit(url).path.strip("/").split("/")[0]
        base = f"https://login.microsoftonline.com/{tenant}"
        return {"token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{base}/v2.0"}
    return {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}
