"""Helpers the suite shares that are not fixtures: a "real" provider on loopback, a
private Redis server, and waiting for a delivery (not for a breaker's time)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["CLOUD_SECRETS", "LOOPBACK_ANSWERS", "PROVIDERS", "LiveProvider", "LoopbackProvider",
           "clouds", "eventually", "free_port", "start_redis", "write_service_account"]

#: One provider of each type, with test keys, as most router tests configure them.
PROVIDERS = {
    "openai": {"type": "openai", "model": "gpt-4o-mini", "api_key": "sk-test-openai-0123456789"},
    "claude": {"type": "anthropic", "model": "claude-haiku-4-5",
               "api_key": "sk-ant-test-0123456789"},
    "gemini": {"type": "gemini", "model": "gemini-2.5-flash", "api_key": "AIzaTest0123456789abc"},
}


#: Every credential `clouds` configures: none may appear in any output.
CLOUD_SECRETS = ("azure-key-0123456789abcdef", "AKIAEXAMPLE01234567", "aws-secret-0123456789abcdef",
                 "aws-session-0123456789abcdef", "entra-secret-0123456789abcdef")


def clouds(service_account: str) -> dict[str, dict[str, Any]]:
    """One provider on each cloud, as the cloud tests configure them: the same models as
    `PROVIDERS` (OpenAI -> Azure, Anthropic -> Bedrock and Vertex, Gemini -> Vertex)."""
    return {
        "azure": {"type": "azure", "model": "gpt-4o-mini", "deployment": "gpt4o-prod",
                  "base_url": "https://contoso.openai.azure.com", "api_version": "2024-10-21",
                  "api_key": CLOUD_SECRETS[0]},
        "azure-entra": {"type": "azure", "model": "gpt-4o-mini",
                        "base_url": "https://contoso.openai.azure.com",
                        "credentials": {"tenant_id": "contoso-tenant", "client_id": "app-1",
                                        "client_secret": CLOUD_SECRETS[4]}},
        "bedrock": {"type": "anthropic", "platform": "bedrock",
                    "model": "anthropic.claude-haiku-4-5-20251001-v1:0", "region": "us-east-1",
                    "credentials": {"aws_access_key_id": CLOUD_SECRETS[1],
                                    "aws_secret_access_key": CLOUD_SECRETS[2],
                                    "aws_session_token": CLOUD_SECRETS[3]}},
        "vertex-claude": {"type": "anthropic", "platform": "vertex",
                          "model": "claude-haiku-4-5@20251001", "region": "us-east5",
                          "project": "acme-prod",
                          "credentials": {"service_account_file": service_account}},
        "vertex-gemini": {"type": "gemini", "platform": "vertex", "model": "gemini-2.5-flash",
                          "region": "us-central1", "project": "acme-prod",
                          "credentials": {"service_account_file": service_account}},
    }


def write_service_account(path: Path) -> Path:
    """A service-account key file with a real RSA key (google-auth signs a JWT with it)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "acme-prod", "private_key_id": "k1",
        "private_key": pem, "client_email": "failover@acme-prod.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}))
    return path


#: What the loopback providers answer, in each wire format.
LOOPBACK_ANSWERS: dict[str, dict[str, Any]] = {
    "anthropic": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                  "content": [{"type": "text", "text": "hi from loopback"}],
                  "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 4}},
    "gemini": {"candidates": [{"content": {"role": "model",
                                           "parts": [{"text": "hi from loopback"}]},
                               "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4}},
    "openai": {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-x",
               "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "hi from loopback"}}],
               "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
}


class LoopbackProvider(BaseHTTPRequestHandler):
    """Every provider's API on 127.0.0.1, answering each wire format with a whole answer;
    ``received`` is called with the request's format and key."""

    protocol_version = "HTTP/1.1"

    def received(self, fmt: str, key: str) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        fmt = ("gemini" if "generateContent" in self.path
               else "anthropic" if self.path.endswith("/messages") else "openai")
        self.received(fmt, self.headers.get("x-api-key") or self.headers.get(
            "authorization", "").removeprefix("Bearer "))
        body = json.dumps(LOOPBACK_ANSWERS[fmt]).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class LiveProvider(LoopbackProvider):
    """A "real" provider for a live drill: remembers each request's format and key."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def received(self, fmt: str, key: str) -> None:
        type(self).seen.append((fmt, key))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait for a Redis message to be applied (a delivery, not a breaker's time)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is needed (.ci/run installs it)"
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.02)
    client.close()
    return server
