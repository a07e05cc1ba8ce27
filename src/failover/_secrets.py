"""The secret values this process holds, and the one scrubber every output goes through.

A secret (a provider key, a header value read from ``${VAR}`` or named like a credential,
the password of a URL, a webhook's path token) is registered once, when the library
first holds it. `scrub` then replaces it, by exact value and in its common encodings
(URL-encoded, base64, HTTP basic-auth), with ``***`` in any text: error messages,
attempt details, events, log records (the library's and those of httpx2 and the SDKs,
see `install_log_scrubber`), webhook payloads, the deferred store, telemetry and CLI
output.
Anything else shaped like a key (``sk-...``, ``AIza...``, an AWS access key id, a Google
OAuth token ``ya29....``, ``Bearer ...``) is masked too,
for secrets the library never saw (a key echoed from another project).
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from urllib.parse import quote, urlsplit

__all__ = ["install_log_scrubber", "mask_url", "redact", "register", "register_url", "scrub"]

#: Shorter values are not registered: scrubbing "none" or "x" would mangle every text.
_MIN_LENGTH = 6

_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{6,}|sk-ant-[A-Za-z0-9_\-]{6,}|AIza[0-9A-Za-z_\-]{10,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}|ya29\.[0-9A-Za-z_\-]{10,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._\-]{8,}|(?i:(?:api[_-]?key|x-goog-api-key|key)=)[^\s&\"']+)"
)

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _forms(value: str) -> set[str]:
    raw = value.encode()
    return {value, quote(value, safe=""), base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode().rstrip("=")}


def register(value: str | None) -> None:
    """Scrub ``value`` (and its encodings) from everything the library outputs."""
    global _pattern
    if not value or len(value) < _MIN_LENGTH:
        return
    forms = {f for f in _forms(value) if len(f) >= _MIN_LENGTH} - _values
    if not forms:
        return
    with _lock:
        _values.update(forms)
        # Longest first, so a value is never half-replaced by one of its own parts.
        ordered = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def register_url(url: str | None) -> None:
    """A URL's password (also as basic-auth) and, for webhooks, its path token."""
    if not url:
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:
        register(parts.password)
        register(f"{parts.username or ''}:{parts.password}")
    # A webhook URL is a bearer credential: its path (``/services/T0/B0/XXXX``) is the
    # token. Segments with a digit and a length of a token are registered.
    for segment in parts.path.split("/"):
        if len(segment) >= 8 and any(c.isdigit() for c in segment):
            register(segment)
    if parts.query:
        register(parts.query)


def mask_url(url: str | None, *, path: bool = False) -> str | None:
    """``url`` fit to print: no password (``user:***@host``), and with ``path`` (a webhook,
    whose path is its token) no path either."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    if not parts.scheme or "${" in url:
        return scrub(url)  # a ${VAR} reference, or not a URL at all: nothing resolved here
    user = f"{parts.username}:***@" if parts.password else (
        f"{parts.username}@" if parts.username else "")
    rest = "/***" if path and (parts.path.strip("/") or parts.query) else (
        parts.path + (f"?{parts.query}" if parts.query else ""))
    return scrub(f"{parts.scheme}://{user}{host}{port}{rest}")


def redact(text: str) -> str:
    """Mask anything shaped like an API key (for secrets never registered)."""
    return _SHAPES.sub("***", text)


def scrub(text: str) -> str:
    """``text`` with every registered secret and every key-shaped string masked."""
    if not text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub("***", text)
    return redact(text)


def _scrub_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: leave it to the handler to report
        return
    record.msg, record.args = scrub(message), None
    if record.exc_info:
        record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))


#: Loggers whose records can carry a URL, a header or a body: the library's own and
#: those of the transport and the SDKs it drives (children included: ``openai._base_client``).
LOGGERS = ("failover", "httpx2", "httpcore2", "httpx", "httpcore", "openai", "anthropic",
           "google_genai", "google.genai",
           # What the clouds' credentials pass through: SigV4 signing logs the canonical
           # request (with the session token), the token fetchers their exchanges.
           "botocore", "boto3", "google.auth", "google.oauth2", "azure", "msal", "urllib3",
           "requests")
_installed = False


def install_log_scrubber() -> None:
    """Scrub every log record of `LOGGERS` (and their children) as it is made.

    A logger's filter would miss the records of its children, and handlers belong to the
    application; so the record factory is wrapped, once, calling whatever factory was
    there before. Records of other loggers are untouched.
    """
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()
        prefixes = tuple(f"{name}." for name in LOGGERS)

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if record.name in LOGGERS or record.name.startswith(prefixes):
                _scrub_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
