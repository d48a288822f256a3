"""The README, run as a newcomer would: its bash and python blocks, in order, in a temp folder.

Bash blocks run in bash (``set -eo pipefail``); a ``cd`` carries over to the next block. Python
blocks share one namespace, like cells of a notebook, and run in the shell's current folder.
A block preceded by ``<!-- readme-test: skip REASON -->`` is not run. A few lines are handled
here instead, each for the reason in ``LINE_RULES``.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```\s*([\w-]*)")
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b\s*(.*?)\s*-->")
README_PORT = "6566"
LINE_RULES = {
    "pip install": "the test runs in the venv pitstop is installed in (test_install covers that)",
    "open ": "opens a browser",
    "pitstop serve": "runs until stopped: the test starts it in the background on a free port",
}
CURL = 'curl() { command curl --fail-with-body --silent --show-error --max-time 60 "$@"; echo; }'


@dataclass
class Block:
    lang: str
    code: str
    line: int  # of the opening fence, 1-based
    skip: str | None

    def where(self) -> str:
        first = next((x for x in self.code.splitlines() if x.strip()), "")
        return f"README.md line {self.line} ({self.lang} block starting {first.strip()!r})"


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text``, with the skip reason written just above it, if any."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        above = i - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        skip = SKIP.search(lines[above]) if above >= 0 else None
        code = "\n".join(lines[i + 1 : end])
        blocks.append(Block(match.group(1), code, i + 1, skip.group(1) if skip else None))
        i = end + 1
    return blocks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Tour:
    """The state a reader carries from block to block: folder, Python namespace, server."""

    cwd: Path
    state: Path  # where the shell leaves its current folder for the next block
    port: str = field(default_factory=lambda: str(free_port()))
    namespace: dict[str, Any] = field(default_factory=dict)
    server: subprocess.Popen[bytes] | None = None
    ran: list[str] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "COLUMNS": "120"}

    def localize(self, code: str) -> str:
        return code.replace(f"localhost:{README_PORT}", f"127.0.0.1:{self.port}")

    def bash(self, block: Block) -> None:
        kept = []
        for line in self.localize(block.code).splitlines():
            rule = next((r for r in LINE_RULES if line.lstrip().startswith(r)), None)
            if rule == "pitstop serve":
                self.serve(block, line)
            elif rule is None:
                kept.append(line)
        script = "\n".join(["set -eo pipefail", CURL, *kept, 'pwd > "$READMETEST_CWD"'])
        cwd_file = self.state / "cwd"
        proc = subprocess.run(
            ["bash", "-c", script],
            cwd=self.cwd,
            env={**self.env(), "READMETEST_CWD": str(cwd_file)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            pytest.fail(
                f"{block.where()} exited with status {proc.returncode}.\n"
                f"--- script ---\n{script}\n--- stdout ---\n{proc.stdout[-4000:]}\n"
                f"--- stderr ---\n{proc.stderr[-4000:]}",
                pytrace=False,
            )
        self.cwd = Path(cwd_file.read_text().strip())
        cwd_file.unlink()

    def python(self, block: Block) -> None:
        code = compile(block.code, f"README.md:{block.line}", "exec")
        before = Path.cwd()
        os.chdir(self.cwd)
        try:
            exec(code, self.namespace)
        except Exception:
            pytest.fail(
                f"{block.where()} raised (line numbers count from the fence):\n"
                f"{traceback.format_exc(limit=-3)}",
                pytrace=False,
            )
        finally:
            os.chdir(before)

    def serve(self, block: Block, line: str) -> None:
        args = shlex.split(line.split("#", 1)[0])
        if "-p" in args:
            args[args.index("-p") + 1] = self.port
        else:
            args += ["-p", self.port]
        self.server = subprocess.Popen(
            args, cwd=self.cwd, env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                err = self.server.stderr.read().decode() if self.server.stderr else ""
                pytest.fail(f"{block.where()}: `{line}` exited:\n{err}", pytrace=False)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"{block.where()}: `{line}` did not answer /health in 60 s", pytrace=False)

    def close(self) -> None:
        store = self.namespace.get("store")
        if store is not None and hasattr(store, "close"):
            store.close()
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.communicate()


@pytest.fixture
def tour(tmp_path: Path) -> Iterator[Tour]:
    (tmp_path / "reader").mkdir()
    (tmp_path / "state").mkdir()
    t = Tour(cwd=tmp_path / "reader", state=tmp_path / "state")
    try:
        yield t
    finally:
        t.close()


def test_skip_markers_and_fences_are_read() -> None:
    text = (
        "intro\n```bash\necho one\n```\n\n<!-- readme-test: skip needs a browser -->\n\n"
        "```python\nprint(2)\n```\n```yaml\na: 1\n```\n"
    )
    blocks = readme_blocks(text)
    assert [(b.lang, b.code, b.line, b.skip) for b in blocks] == [
        ("bash", "echo one", 2, None),
        ("python", "print(2)", 8, "needs a browser"),
        ("yaml", "a: 1", 11, None),
    ]


@pytest.mark.slow
def test_every_readme_block_runs_in_order(tour: Tour) -> None:
    blocks = readme_blocks(README.read_text())
    for block in blocks:
        if block.skip is not None:
            assert block.skip, f"{block.where()}: a skip marker needs a reason"
            continue
        if block.lang == "bash":
            tour.bash(block)
        elif block.lang == "python":
            tour.python(block)
        else:
            continue
        tour.ran.append(block.lang)
    # guard against a parser that silently finds nothing to run
    assert tour.ran.count("bash") >= 4 and tour.ran.count("python") >= 4, tour.ran
    assert tour.server is not None, "no block started `pitstop serve`"
