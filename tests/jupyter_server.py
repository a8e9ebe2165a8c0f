"""Start a Jupyter server (JupyterLab, formgrader) for a test, and always stop it again.

    with running_server(["lab"], cwd=folder) as server:
        server.get("/api/status")          # JSON, with the token
        server.url("/lab/tree/x.ipynb")    # for a browser

The server listens on 127.0.0.1 on a free port, with a random token, in its own
process group (kernels included), with its own Jupyter config, runtime and data
folders, so nothing of the user's Jupyter setup leaks in and nothing is left behind:
on exit (also after a failure) the whole process group is terminated, then killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, port: int, token: str, log: pathlib.Path):
        self.port, self.token, self.log = port, token, log
        self.base = f"http://127.0.0.1:{port}"

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}{sep}token={self.token}"

    def request(self, path: str, timeout: float = 30) -> tuple[int, str]:
        req = urllib.request.Request(f"{self.base}{path}", headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def get(self, path: str, timeout: float = 30):
        status, body = self.request(path, timeout)
        assert status == 200, f"GET {path}: HTTP {status}\n{body[:2000]}\n--- server log ---\n{self.log_tail()}"
        return json.loads(body)

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def _processes_using(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker`` (kernels name their connection file in it)."""
    found = []
    for entry in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]


def _stop(proc: subprocess.Popen, runtime_dir: pathlib.Path) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)  # the server (a clean stop also shuts its kernels down)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    # kernels run in sessions of their own: any left (the server was killed) die here
    for pid in _processes_using(str(runtime_dir)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_server(app: list[str], cwd: pathlib.Path, extra_args: list[str] = (), env: dict | None = None,
                   startup_timeout: float = 180):
    """Run ``python -m jupyter <app...>`` in ``cwd`` until the block ends; yield a :class:`Server`."""
    port, token = free_port(), secrets.token_hex(16)
    private = cwd / ".jupyter-test"
    for sub in ("config", "runtime"):
        (private / sub).mkdir(parents=True, exist_ok=True)
    log = private / "server.log"
    full_env = {**os.environ, "JUPYTER_CONFIG_DIR": str(private / "config"),
                "JUPYTER_RUNTIME_DIR": str(private / "runtime"), "JUPYTER_PLATFORM_DIRS": "1",
                "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    # as in an activated virtual environment: nbgrader runs `alembic` by name
    full_env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), full_env.get("PATH", "")])
    full_env.pop("JUPYTER_TOKEN", None)
    command = [sys.executable, "-m", "jupyter", *app, "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={cwd}", *extra_args]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI often run as root
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(port, token, log)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter {' '.join(app)} exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                if server.request("/api/status", timeout=5)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"jupyter {' '.join(app)} did not start in {startup_timeout} s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        _stop(proc, private / "runtime")
