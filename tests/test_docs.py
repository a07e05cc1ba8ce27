"""Every fenced Python example in README.md and docs/*.md runs, so a doc example that
stops working fails CI; so do the shell examples marked safe (``failover check``,
``drill``, ``plan``).

A comment on the line before a fence says how a block runs (default: a script):

- ``<!-- docs-test: conftest -->``: the conftest of that page's pytest examples;
- ``<!-- docs-test: pytest -->``: a test module, run with pytest (every test must pass);
- ``<!-- docs-test: file PATH -->``: written into the example project at PATH;
- ``<!-- docs-test: shell -->``: each ``failover ...`` line is run in process and must
  exit 0 (``exit=N``: must exit N); a drill runs on simulated time (``--simulated-time``),
  so its waits cost no wall time.

Scripts of one page run in order in one namespace (a later example may use a router an
earlier one built), in a folder holding the page's ``# failover.yaml`` example (or a
default one), with dummy keys in the environment and every provider simulated: nothing
reaches a network.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import failover
from failover.cli import main as cli_main
from failover.testing import FakeProviders, answer

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\w*)\s*$")
_DIRECTIVE = re.compile(r"^<!--\s*docs-test:\s*(\w+)\s*(.*?)\s*-->\s*$")

DEFAULT_CONFIG = """
providers:
  openai: {type: openai, model: gpt-4o-mini, api_key: "${OPENAI_API_KEY}"}
  claude: {type: anthropic, model: claude-haiku-4-5, api_key: "${ANTHROPIC_API_KEY}"}
  gemini: {type: gemini, model: gemini-2.5-flash, api_key: "${GEMINI_API_KEY}"}
routes:
  default: {chain: [openai, claude, gemini]}
"""
DUMMY_ENV = {"OPENAI_API_KEY": "sk-docs-0123456789", "ANTHROPIC_API_KEY": "sk-ant-docs-012345",
             "GEMINI_API_KEY": "AIzaDocs0123456789", "OPS_WEBHOOK_URL": "https://hooks.test/x",
             "AZURE_OPENAI_API_KEY": "azure-docs-0123456789", "AZURE_TENANT_ID": "docs-tenant",
             "AZURE_CLIENT_ID": "docs-client", "AZURE_CLIENT_SECRET": "entra-docs-0123456789",
             "AWS_ACCESS_KEY_ID": "AKIADOCS000000000001",
             "AWS_SECRET_ACCESS_KEY": "aws-docs-secret-0123456789",
             "GOOGLE_ACCESS_TOKEN": "ya29.docs-token-0123456789"}


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    text: str
    how: str = "script"
    arg: str = ""

    @property
    def id(self) -> str:
        return f"{self.page.name}:{self.line}"


@dataclass
class Page:
    path: Path
    blocks: list[Block] = field(default_factory=list)

    def of(self, *hows: str) -> list[Block]:
        return [b for b in self.blocks if b.lang == "python" and b.how in hows]

    @property
    def config(self) -> str:
        """The page's own ``# failover.yaml`` example, if it has one."""
        for block in self.blocks:
            if block.lang == "yaml" and block.text.startswith("# failover.yaml"):
                return block.text
        return DEFAULT_CONFIG


def parse(path: Path) -> Page:
    page = Page(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    directive: tuple[str, str] | None = None
    i = 0
    while i < len(lines):
        found = _DIRECTIVE.match(lines[i])
        fence = _FENCE.match(lines[i])
        if found:
            directive = (found.group(1), found.group(2))
        elif fence and fence.group(1):
            body, start = [], i + 1
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            how, arg = directive or ("script", "")
            page.blocks.append(Block(path, start, fence.group(1), "\n".join(body) + "\n",
                                     how, arg))
            directive = None
        elif lines[i].strip():
            directive = None
        i += 1
    return page


PARSED = [parse(p) for p in PAGES]
PYTEST_BLOCKS = [b for page in PARSED for b in page.of("pytest")]
SCRIPT_PAGES = [page for page in PARSED if page.of("script")]
SHELL_BLOCKS = [b for page in PARSED for b in page.blocks if b.how == "shell"]


def test_every_python_block_is_run() -> None:
    known = {"script", "pytest", "conftest", "file"}
    blocks = [b for page in PARSED for b in page.blocks if b.lang == "python"]
    assert all(b.how in known for b in blocks), [b.id for b in blocks if b.how not in known]
    assert len(blocks) >= 20  # the count is in the closing note; none may go missing


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in DUMMY_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _lay_out(page: Page, project: Path) -> None:
    (project / "failover.yaml").write_text(page.config, encoding="utf-8")
    for block in page.of("file"):
        target = project / block.arg
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.text, encoding="utf-8")
        for parent in target.relative_to(project).parents:
            if parent != Path("."):
                (project / parent / "__init__.py").touch()


@pytest.mark.parametrize("page", SCRIPT_PAGES, ids=lambda p: p.path.name)
def test_script_examples(page: Page, project: Path) -> None:
    _lay_out(page, project)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    with FakeProviders(default=answer("An answer from a simulated provider.")):
        for block in page.of("script"):
            code = compile(block.text, f"{block.id}", "exec")
            try:
                exec(code, namespace)
            except Exception as exc:  # name the block: the traceback alone says "<string>"
                raise AssertionError(f"the example at {block.id} failed: {exc!r}") from exc


@pytest.mark.parametrize("block", PYTEST_BLOCKS, ids=lambda b: b.id)
def test_pytest_examples(block: Block, pytester: pytest.Pytester) -> None:
    page = next(p for p in PARSED if p.path == block.page)
    for conftest in page.of("conftest"):
        pytester.makeconftest(conftest.text)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n"
                     "asyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_example=block.text)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p",
                                          "no:hypothesispytest")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1, result.stdout.str()
    assert not outcomes.get("failed") and not outcomes.get("errors"), result.stdout.str()


def _commands(block: Block) -> Iterator[list[str]]:
    for line in block.text.splitlines():
        command = line.split("#", 1)[0].strip().removeprefix("$ ")
        if command.startswith("failover "):
            yield shlex.split(command)[1:]


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.id)
def test_shell_examples(block: Block, project: Path, capsys: pytest.CaptureFixture[str]
                        ) -> None:  # fmt: skip
    page = next(p for p in PARSED if p.path == block.page)
    _lay_out(page, project)
    commands = list(_commands(block))
    assert commands, f"{block.id} is marked shell but runs no failover command"
    expected = int(block.arg.removeprefix("exit=")) if block.arg.startswith("exit=") else 0
    with FakeProviders(default=answer("ok")):
        for argv in commands:
            if argv[0] == "drill" and "--simulated-time" not in argv:
                argv = [*argv, "--simulated-time"]
            code = cli_main(argv)
            assert code == expected, (argv, capsys.readouterr())


def test_the_docs_name_only_existing_public_names() -> None:
    # A cheap guard for prose examples: every `failover.X` the docs mention exists.
    names = set()
    for page in PARSED:
        names |= set(re.findall(r"\bfailover\.([A-Z]\w+)", page.path.read_text()))
    assert {n for n in names if not hasattr(failover, n)} == set()
    assert os.environ.get("OPENAI_API_KEY") != DUMMY_ENV["OPENAI_API_KEY"]
