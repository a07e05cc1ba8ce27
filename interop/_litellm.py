"""LiteLLM's proxy for the interop suite: its config of mock-answering models, and how to
start it on loopback and wait for it."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MASTER_KEY = "sk-interop-master-key-0123456789"
#: Any model the proxy does not mock is pointed here: a closed loopback port, never the
#: internet, so a model that falls through to its "upstream" fails at once.
NOWHERE = "http://127.0.0.1:9/v1"
ANSWER = "Hello from the proxy."


def _mock(name: str, **params: object) -> dict[str, object]:
    return {"model_name": name, "litellm_params": {
        "model": "openai/gpt-4o-mini", "api_key": "sk-upstream-never-used",
        "api_base": NOWHERE, **params,
    }}


PROXY_CONFIG = {
    "model_list": [
        _mock("mock-chat", mock_response=ANSWER),
        _mock("mock-tools", mock_response="", mock_tool_calls=[{
            "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        }]),
        _mock("mock-ratelimit", mock_response="litellm.RateLimitError"),
        _mock("mock-down", mock_response="litellm.InternalServerError"),
    ],
    "general_settings": {"master_key": MASTER_KEY},
    # The proxy's own retries off, as failover's SDKs have theirs: one request, one answer.
    "litellm_settings": {"telemetry": False, "num_retries": 0},
    "router_settings": {"num_retries": 0},
}


@dataclass(frozen=True)
class Proxy:
    url: str
    version: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"LiteLLM's proxy exited at start-up:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health/liveliness", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"LiteLLM's proxy did not come up in 90 s:\n{log.read_text()[-3000:]}")


def version_of(executable: str) -> str:
    python = Path(executable).with_name("python")
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m;"
                          "print(m.version('litellm'))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()
