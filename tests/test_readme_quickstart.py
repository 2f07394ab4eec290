"""The README as a newcomer pastes it: its first lines, and both quick starts run line by line.

Each quick start's ```sh blocks are split into the commands a person would paste, and run
with bash against a real server started as `make run` starts it (`python -m dalet_ops.cli
serve`, fresh data folder, keys generated and printed). Two things differ from a terminal,
both stated here: `localhost:8000` becomes the test server's address, and a `NAME=...`
placeholder line takes the value the server printed for it (as the line's comment asks).
`make run` itself is not run again: the server is already what it starts.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.local_server import LocalServer, wait_until

README = Path(__file__).resolve().parent.parent / "README.md"
README_HOST = "localhost:8000"
PRINTED = {"KEY": r"Report API key \(x-api-key\): (\S+)",
           "WRITE_KEY": r"Segment write key \(namespace default\): (\S+)"}


def readme_section(title_start: str) -> str:
    """The README text under the `## ` heading that starts with `title_start`, up to the next one."""
    sections = re.split(r"^## ", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    matching = [section for section in sections if section.startswith(title_start)]
    assert len(matching) == 1, f"README has no single section '## {title_start}...'"
    return matching[0]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def pasted_commands(block: str) -> list[str]:
    """Lines joined into whole commands: a command goes on while a quote is open or a line ends in \\."""
    commands, pending = [], ""
    for line in block.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:      # an open quote: the command goes on
            continue
        if pending.strip():
            commands.append(pending)
        pending = ""
    assert not pending, f"unfinished command in the README: {pending!r}"
    return commands


def printed_values(log: str) -> dict[str, str]:
    values = {}
    for name, pattern in PRINTED.items():
        found = re.search(pattern, log)
        assert found, f"the server did not print {name} ({pattern}):\n{log}"
        values[name] = found.group(1)
    return values


class Terminal:
    """Runs pasted commands one by one; assignments made by earlier ones stay in effect."""

    def __init__(self, server: LocalServer, printed: dict[str, str], folder: Path):
        self.server = server
        self.printed = printed
        self.folder = folder
        self.assignments: list[str] = []

    def adapt(self, command: str) -> str:
        command = command.replace(README_HOST, f"127.0.0.1:{self.server.port}")
        placeholder = re.match(r"^(\w+)=\.\.\.(\s|$)", command)
        if placeholder:
            command = f"{placeholder.group(1)}={shlex.quote(self.printed[placeholder.group(1)])}"
        return command

    def run(self, command: str) -> str:
        adapted = self.adapt(command)
        if re.match(r"^\w+=\S*$", adapted):
            self.assignments.append(adapted)
            return ""
        script = "\n".join([*self.assignments, adapted])
        finished = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=self.folder, capture_output=True,
                                  text=True, timeout=30)
        assert finished.returncode == 0, f"{command!r} failed:\n{finished.stdout}{finished.stderr}"
        return finished.stdout


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer.start(tmp_path / "data", via_make_run=True) as server:
        yield server


@pytest.fixture
def terminal(make_run: LocalServer, tmp_path: Path) -> Terminal:
    return Terminal(make_run, printed_values(make_run.log()), tmp_path)


def run_section(terminal: Terminal, title_start: str) -> list[tuple[str, Any]]:
    """Every command of the section except `make run`; (command, its JSON output or None)."""
    outputs = []
    for block in shell_blocks(readme_section(title_start)):
        for command in pasted_commands(block):
            if command.split("#")[0].strip() == "make run":
                continue
            outputs.append((command, answer_of(terminal, command)))
    return outputs


def answer_of(terminal: Terminal, command: str) -> Any:
    """A report may lag the stream by a moment; a person pasting the next line would see it a moment later."""
    if "x-api-key" in command:
        return wait_until(lambda: _json_or_none(terminal.run(command), reject_error=True), timeout=20,
                          message=f"{command!r} to answer a report")
    return _json_or_none(terminal.run(command))


def _json_or_none(output: str, reject_error: bool = False) -> Any:
    try:
        answer = json.loads(output)
    except ValueError:
        return None
    if reject_error and isinstance(answer, dict) and "error" in answer:
        return None
    return answer


def test_the_readme_opens_with_the_two_commands_make_run_and_make_test():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# Dalet"
    first_block = lines[lines.index("```sh") + 1:lines.index("```")]
    assert [line.split("#")[0].strip() for line in first_block] == ["make run", "make test"]
    assert lines.index("```sh") <= 3


def test_the_quick_start_is_within_the_first_40_lines_and_ends_at_the_dashboard():
    lines = README.read_text(encoding="utf-8").splitlines()[:40]
    assert any(line.startswith("## Quick start") for line in lines)
    assert any("curl" in line and "/track" in line for line in lines)
    assert any("http://localhost:8000/dashboard" in line for line in lines)


def test_the_quick_start_as_pasted_tracks_an_experiment_the_dashboard_shows(terminal, make_run):
    outputs = run_section(terminal, "Quick start: ")
    tracked = [answer for command, answer in outputs if "/track" in command]
    assert tracked == [{"ok": True, "accepted": 7}]

    def results() -> Any:
        reply = make_run.request("GET", "/experiments/checkout/results",
                                 headers={"x-api-key": terminal.printed["KEY"]})
        return reply.json() if reply.status == 200 else None

    participants = {variant["label"]: variant["participants"] for variant in wait_until(results)["variants"]}
    assert participants == {"control": 2, "red": 2}
    assert dashboard_lists(terminal.adapt(dashboard_url()), terminal.printed["KEY"]) == ["checkout"]


def dashboard_url() -> str:
    (url,) = set(re.findall(r"http://localhost:8000/dashboard\b", readme_section("Quick start: ")))
    return url


def dashboard_lists(url: str, key: str) -> list[str]:
    """The experiments the dashboard at `url` lists once the key is pasted, in headless Chromium."""
    from playwright.sync_api import sync_playwright

    from tests.test_alephbet_browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.fill("#api-key", key)
            page.click("#key-form button[type=submit]")
            page.wait_for_selector("#experiments button.experiment-link")
            return page.locator("#experiments button.experiment-link").evaluate_all(
                "buttons => buttons.map(b => b.getAttribute('data-experiment'))")
        finally:
            browser.close()


def test_the_segment_quick_start_as_pasted_reports_the_experiment(terminal):
    outputs = run_section(terminal, "Quick start with Segment")
    sent = [answer for command, answer in outputs if "/v1/batch" in command]
    assert sent == [{"success": True}]
    [results] = [answer for command, answer in outputs if "/results" in command]
    assert results["source"] == "segment"
    assert {variant["label"]: variant["participants"] for variant in results["variants"]} == {"cheap": 1, "control": 1}
    [goal] = [goal for goal in results["goals"] if goal["goal"] == "Order Completed"]
    assert {variant["label"]: variant["successes"] for variant in goal["variants"]} == {"cheap": 1, "control": 0}


def test_every_relative_link_and_image_in_the_readme_names_a_file_of_the_repository():
    text = re.sub(r"^```.*?^```", "", README.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text) + re.findall(r'src="([^"]+)"', text)
    relative = [target for target in targets if not re.match(r"^[a-z]+://", target)]
    assert relative, "the README links to its docs"
    assert [target for target in relative if not (README.parent / target).is_file()] == []
