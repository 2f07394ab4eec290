"""A real `chalice local` in a subprocess, for end-to-end tests.

The server runs this repository's app on 127.0.0.1 and a free port, with
`--no-autoreload`, in its own process group (so killing it also kills anything it
started), with every inherited DALET_* variable removed and DALET_DATA_DIR set to the
folder you give. Its stdout and stderr go to a log file, shown in every error message.

Starting one directly::

    from tests.local_server import LocalServer

    with LocalServer.start(tmp_path / "data", env={"DALET_API_KEY": "k"}) as server:
        server.url("/track")                           # "http://127.0.0.1:<port>/track"
        reply = server.request("POST", "/track", json={...})
        reply.status, reply.headers["content-type"], reply.text, reply.json()
        server.kill()                                  # SIGKILL the process group: a crash
        server.restart()                               # same data folder and env, new port
    # leaving the block terminates it (SIGTERM, then SIGKILL after `grace` seconds)

Or through the pytest fixture, which stops every server it started at teardown::

    from tests.local_server import local_servers  # noqa: F401  (a fixture)

    def test_something(local_servers, tmp_path):
        server = local_servers(tmp_path / "data", env={"DALET_API_KEY": "k"})

Helpers:
    LocalServer.start(data_dir, env=None, port=None, ready_timeout=60) -> LocalServer
        Ready means it answers HTTP at all (any status). Raises ServerFailed (with the
        log) if the process exits or does not answer in time.
    server.url(path, **query)     absolute URL; query values are URL-encoded
    server.request(method, path, json=None, body=None, headers=None, query=None, timeout=10)
        -> Reply; never raises for an HTTP error status
    server.terminate(grace=5) / server.kill() / server.stop()   (stop = terminate)
    server.restart(port=None) -> the same LocalServer, stopped first if still running, started
        again in place on the same data folder and env (a fresh port unless one is given)
    server.is_running, server.port, server.base_url, server.data_dir, server.env, server.log_path
        (the log is written next to the data folder: <data_dir>.chalice-local-<port>.log)
    server.log()                  everything the server printed so far
    wait_until(condition, timeout=20, interval=0.1, message="") -> the first truthy result
    free_port() -> int
"""
from __future__ import annotations

import json as jsonlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
LOCAL_HOST = "127.0.0.1"
T = TypeVar("T")


class ServerFailed(RuntimeError):
    """The server did not start or stopped unexpectedly; the message carries its log."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]   # lower-cased names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return jsonlib.loads(self.body)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCAL_HOST, 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], T], timeout: float = 20.0, interval: float = 0.1, message: str = "") -> T:
    """Call `condition` until it returns something truthy, and return that; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"still false after {timeout} s: {message or condition}")
        time.sleep(interval)


def _server_environment(data_dir: Path, overrides: Mapping[str, str]) -> dict[str, str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("DALET_")}
    environment.update(PYTHONUNBUFFERED="1", DALET_DATA_DIR=str(data_dir))
    environment.update(overrides)
    return environment


@dataclass
class LocalServer:
    data_dir: Path
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen = field(repr=False)
    ready_timeout: float = 60.0
    via_make_run: bool = False

    @classmethod
    def start(cls, data_dir: Path | str, env: Mapping[str, str] | None = None, port: int | None = None,
              ready_timeout: float = 60.0, via_make_run: bool = False) -> "LocalServer":
        """`via_make_run=True` starts what `make run` starts (`python -m dalet_ops.cli serve`)."""
        data_dir = Path(data_dir).absolute()
        chosen_port = port or free_port()
        process = _spawn(data_dir, env or {}, chosen_port, via_make_run)
        server = cls(data_dir=data_dir, env=dict(env or {}), port=chosen_port,
                     log_path=_log_path(data_dir, chosen_port), process=process,
                     ready_timeout=ready_timeout, via_make_run=via_make_run)
        server._wait_until_ready()
        return server

    @property
    def base_url(self) -> str:
        return f"http://{LOCAL_HOST}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self.process.poll() is None

    def url(self, path: str, **query: str) -> str:
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return f"{self.base_url}{path}{suffix}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def request(self, method: str, path: str, json: Any = None, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, query: Mapping[str, str] | None = None,
                timeout: float = 10.0) -> Reply:
        all_headers = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json).encode("utf-8")
            all_headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.url(path, **(query or {})), data=body, method=method,
                                         headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Reply(response.status, _lower(response.headers.items()), response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, _lower(error.headers.items()), error.read())

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.is_running:
                raise ServerFailed(f"chalice local exited with {self.process.returncode}:\n{self.log()}")
            if self._answers_http():
                return
            time.sleep(0.1)
        self.kill()
        raise ServerFailed(
            f"chalice local did not answer on port {self.port} within {self.ready_timeout} s:\n{self.log()}")

    def _answers_http(self) -> bool:
        try:
            self.request("GET", "/", timeout=2)
            return True
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def _signal_group(self, signal_number: int) -> None:
        try:
            os.killpg(self.process.pid, signal_number)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup runs, as in a crash."""
        self._signal_group(signal.SIGKILL)
        self.process.wait()

    def terminate(self, grace: float = 5.0) -> None:
        """SIGTERM the process group; SIGKILL it if it has not exited after `grace` seconds."""
        if self.is_running:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # The group may outlive its leader; make sure nothing of it is left.
        self.kill()

    stop = terminate

    def restart(self, port: int | None = None) -> "LocalServer":
        """Stop, then start again in place: same data folder and env, a fresh port unless one is given."""
        self.terminate()
        self.port = port or free_port()
        self.log_path = _log_path(self.data_dir, self.port)
        self.process = _spawn(self.data_dir, self.env, self.port, self.via_make_run)
        self._wait_until_ready()
        return self

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *_: Any) -> None:
        self.terminate()


def _log_path(data_dir: Path, port: int) -> Path:
    return data_dir.with_name(f"{data_dir.name}.chalice-local-{port}.log")


def _spawn(data_dir: Path, env: Mapping[str, str], port: int, via_make_run: bool = False) -> subprocess.Popen:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if via_make_run:
        command = [sys.executable, "-m", "dalet_ops.cli", "serve", "--host", LOCAL_HOST, "--port", str(port)]
    else:
        command = [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())",
                   "--project-dir", str(PROJECT_DIR), "local",
                   "--host", LOCAL_HOST, "--port", str(port), "--no-autoreload"]
    with open(_log_path(data_dir, port), "wb") as log_file:
        return subprocess.Popen(
            command, cwd=PROJECT_DIR, env=_server_environment(data_dir, env),
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() reaches everything it started
        )


def _lower(items: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


@pytest.fixture
def local_servers() -> Iterator[Callable[..., LocalServer]]:
    """A factory with LocalServer.start's arguments; every server it started is stopped at teardown."""
    started: list[LocalServer] = []

    def start(data_dir: Path | str, env: Mapping[str, str] | None = None, port: int | None = None) -> LocalServer:
        server = LocalServer.start(data_dir, env, port=port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.terminate()
