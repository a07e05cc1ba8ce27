"""The interop suite: `failover` against LiteLLM's proxy, a server no one here wrote.

`make interop` installs the proxy into its own virtual environment (`.interop-venv/`),
then runs this folder with ``FAILOVER_LITELLM`` naming the proxy's executable, inside a
network namespace of its own where the machine allows one (so nothing can leave
loopback). The proxy is started once per session on a free loopback port with a config
of mock-answering models: no upstream is ever called, no real key is needed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from ._litellm import PROXY_CONFIG, Proxy, free_port, version_of, wait_until_up


@pytest.fixture(scope="session")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    executable = os.environ.get("FAILOVER_LITELLM")
    if not executable:
        pytest.fail("the interop suite needs LiteLLM's proxy: run `make interop`, which "
                    "installs it and sets FAILOVER_LITELLM", pytrace=False)
    folder = tmp_path_factory.mktemp("litellm")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(PROXY_CONFIG))
    port = free_port()
    log = folder / "proxy.log"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False",
           "NO_PROXY": "*"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [executable, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, log)
        yield Proxy(url=url, version=version_of(executable))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
