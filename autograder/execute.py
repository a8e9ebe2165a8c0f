"""nbgrader's Execute step, hardened: a sandboxed kernel, and faults that cost one exercise.

:class:`ResilientExecute` replaces ``nbgrader.preprocessors.Execute`` in autograde
(``Autograde.autograde_preprocessors``). It differs in three ways:

- the kernel runs through :mod:`autograder.sandbox` (no network, hidden paths, an
  unprivileged uid, memory/CPU/file/process limits) in a fresh directory holding
  the lesson's files but no notebook (the autograded copy holds the hidden tests);
- when the kernel dies (``os._exit``, a crash, a limit) or a cell runs past its time
  limit, the cell gets an error output that says so, the kernel is restarted, the
  setup and solution cells that ran cleanly are replayed, and grading goes on with
  the next cell: only the exercise whose cell failed loses its points;
- a whole-submission wall-clock budget: cells after it is spent are not run and say so.

The error outputs it writes have these ``ename`` values, which
:func:`autograder.grade.fault_reasons` turns into the grades.csv reason:
``KernelDied``, ``CellTimeout``, ``SubmissionTimeout`` (and Python's ``MemoryError``).
"""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Dict, Integer, List, Unicode

from .limits import cell_key

SANDBOX_PY = str(pathlib.Path(__file__).with_name("sandbox.py"))
ZYGOTE_PY = str(pathlib.Path(__file__).with_name("zygote.py"))
THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}


def sandbox_root() -> pathlib.Path:
    """A root-owned folder others may traverse but not list; each sandbox is a random name inside."""
    root = pathlib.Path(tempfile.gettempdir()) / f"cnn-sandboxes-{os.getuid()}"
    root.mkdir(mode=0o711, exist_ok=True)
    os.chmod(root, 0o711)
    return root


def new_sandbox(files_from: pathlib.Path | None = None) -> tuple[pathlib.Path, int | None]:
    """A fresh private directory (with ``files_from``'s files, notebooks left out) and the uid to run as."""
    uid = 200_000 + secrets.randbelow(1_000_000) if os.geteuid() == 0 else None
    path = sandbox_root() / secrets.token_hex(12)
    if files_from is not None and files_from.is_dir():
        shutil.copytree(files_from, path, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    else:
        path.mkdir()
    if uid is not None:
        for dirpath, _, filenames in os.walk(path):
            os.chown(dirpath, uid, uid)
            for name in filenames:
                os.chown(os.path.join(dirpath, name), uid, uid)
    os.chmod(path, 0o700)
    return path, uid


def sandbox_config(cwd: pathlib.Path, uid: int | None, limits: dict, hide: list[str]) -> dict:
    import cnn_course

    expose = [sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)),
              os.path.dirname(cnn_course.__file__), os.path.dirname(__file__),
              os.path.join(os.path.dirname(os.path.dirname(cnn_course.__file__)), "data")]
    # Lessons 08/09 re-run their training cells when graded: always in the small "smoke" mode
    # (the checkpoint the student submitted is what gets measured), on the instructor's copy of
    # CIFAR-10 when CNN_COURSE_CIFAR10 names one.
    env = {**THREAD_ENV, "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1", "CNN_COURSE_MODE": "smoke"}
    if os.environ.get("CNN_COURSE_CIFAR10"):
        env["CNN_COURSE_CIFAR10"] = os.environ["CNN_COURSE_CIFAR10"]
        expose.append(os.path.realpath(os.environ["CNN_COURSE_CIFAR10"]))
    return {**limits, "cwd": str(cwd), "uid": uid, "hide": hide, "expose": expose,
            "must_reach": [os.path.realpath(sys.executable), str(cwd)], "env": env}


def sandboxed_argv(cfg: dict, command: list[str]) -> list[str]:
    return [sys.executable, SANDBOX_PY, json.dumps(cfg), "--", *command]


class ForkedProcess:
    """The part of ``subprocess.Popen`` the grader uses, for a kernel (or re-run) the zygote forked."""

    stdin = stdout = stderr = None

    def __init__(self, zygote: Zygote, pid: int):
        self.zygote, self.pid, self.returncode = zygote, pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.exit_code(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"kernel {self.pid} still running")
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.killpg(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class Zygote:
    """A warm process (autograder/zygote.py) that forks sandboxed kernels; one per grading worker."""

    def __init__(self, modules: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, ZYGOTE_PY, *modules], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env={**os.environ, **env}, cwd="/")
        self.exits: dict[int, int] = {}
        self.ready: list[str] | None = None
        self._pending = b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _messages(self, block: bool) -> list[dict]:
        fd = self.proc.stdout.fileno()
        out = []
        while not out:
            readable, _, _ = select.select([fd], [], [], None if block else 0)
            if not readable:
                break
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise RuntimeError("the kernel zygote exited")
            self._pending += chunk
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                out.append(json.loads(line))
        for message in out:
            if "exit" in message:
                self.exits[message["exit"]] = message["code"]
            if "ready" in message:
                self.ready = message["ready"]
        return out

    def spawn(self, argv: list[str], env: dict[str, str], sandbox: dict, rerun_fifos: list[str] | None = None) -> int:
        """Fork a kernel with ipykernel arguments ``argv`` (or, given ``rerun_fifos``, autograder/rerun.py
        reading and writing those FIFOs); return its pid."""
        request = {"argv": argv, "env": env, "sandbox": sandbox, "rerun_fifos": rerun_fifos}
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        while True:
            for message in self._messages(block=True):
                if "pid" in message:
                    return message["pid"]

    def exit_code(self, pid: int) -> int | None:
        if pid not in self.exits:
            try:
                self._messages(block=False)
            except RuntimeError:  # zygote gone: its kernels were killed with it
                return self.exits.setdefault(pid, -signal.SIGKILL)
        return self.exits.get(pid)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self.proc.kill()


_zygote: Zygote | None = None


def live_zygote() -> Zygote | None:
    """This process's zygote, when it has one that is still running."""
    return _zygote if _zygote is not None and _zygote.alive() else None


def start_zygote(modules: list[str]) -> Zygote:
    """Start this process's zygote, preloading ``modules``; kernels started from now on are forked from it.

    Its environment is the sandbox's (one thread per library, the Agg backend, the
    grading mode), so what it imports is configured as a fresh kernel's would be.
    """
    global _zygote
    stop_zygote()
    _zygote = Zygote(modules, sandbox_config(pathlib.Path("/"), None, {}, [])["env"])
    return _zygote


def stop_zygote() -> None:
    global _zygote
    if _zygote is not None:
        _zygote.close()
        _zygote = None


def modules_imported_by(notebooks: list[pathlib.Path]) -> list[str]:
    """Every module an ``import`` statement in these notebooks' code cells names, in order of appearance."""
    import ast

    import nbformat

    names: dict[str, None] = {}
    for path in notebooks:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
            try:
                tree = ast.parse(code)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update((alias.name, None) for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names[node.module] = None
    return list(names)


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel starts through autograder/sandbox.py, over Unix sockets.

    Unix sockets in the sandbox folder, rather than TCP on localhost, because the
    kernel lives in its own network namespace, where the grader's localhost is not.
    When this process has a zygote (:func:`start_zygote`), the kernel is forked from it
    and sandboxes itself the same way, instead of starting from nothing.
    """

    sandbox = Dict({})

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        zygote = live_zygote()
        command = kernel_cmd[4:] if kernel_cmd[1:2] == [SANDBOX_PY] else None
        ipykernel = command is not None and command[1:3] == ["-m", "ipykernel_launcher"] and (
            os.path.realpath(command[0]) == os.path.realpath(sys.executable))
        if zygote is None or not self.sandbox or not ipykernel:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        pid = zygote.spawn(command[3:], dict(kw.get("env") or os.environ), self.sandbox)
        provisioner = self.provisioner
        provisioner.process = ForkedProcess(zygote, pid)
        provisioner.pid = provisioner.pgid = pid
        provisioner.cwd = kw.get("cwd")
        self._reconcile_connection_info(provisioner.connection_info)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if not self.sandbox:
            return cmd
        uid = self.sandbox.get("uid")
        if uid is not None:
            os.chown(self.connection_file, uid, uid)
        return sandboxed_argv(self.sandbox, cmd)


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _where(cell: NotebookNode, index: int) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"


class ResilientExecute(Execute):
    submission_timeout = Integer(600, help="Wall-clock seconds for the whole notebook").tag(config=True)
    cell_limits = Dict({}, help="seconds per cell, measured on the instructor's notebook: "
                             "{lesson: {cell key: s}} (autograder.limits)").tag(config=True)
    limits = Dict({}, help="autograder.sandbox limits: memory_mib, cpu_s, file_mib, nproc").tag(config=True)
    hide = List(Unicode(), help="paths the kernel must not see").tag(config=True)
    sandboxed = Integer(1, help="0 to run the kernel without autograder/sandbox.py").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(*args, **kwargs)

    # -- kernel lifetime ---------------------------------------------------------------

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if self.sandboxed and isinstance(km, SandboxedKernelManager):
            km.transport = "ipc"
            km.ip = str(self._sandbox / "k")
            km.connection_file = str(self._sandbox / "kernel.json")
            km.sandbox = sandbox_config(self._sandbox, self._uid, dict(self.limits), list(self.hide))
        return km

    def _restart(self) -> None:
        try:
            self._cleanup_kernel()
        except Exception:  # noqa: BLE001 - the kernel is gone either way
            pass
        self.km = self.create_kernel_manager()
        self.kc = None
        self.start_new_kernel(cwd=str(self._sandbox))
        self.start_new_kernel_client()
        for source in list(self._replay):
            scratch = NotebookNode(cell_type="code", source=source, metadata={}, outputs=[], execution_count=None)
            try:
                super().preprocess_cell(scratch, self.resources, -1)
            except (DeadKernelError, CellTimeoutError):
                self._replay.remove(source)
                return self._restart()
            if any(o.get("ename") == "CellTimeoutError" for o in scratch.outputs):
                self._replay.remove(source)
                return self._restart()

    def _exit_status(self) -> int | None:
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is None:
            return None
        for _ in range(20):
            code = process.poll()
            if code is not None:
                return code
            time.sleep(0.05)
        return None

    def _answers(self, within: float = 2.0) -> bool:
        """Whether the kernel, interrupted after a timeout, runs an empty request within ``within`` s."""
        from jupyter_core.utils import run_sync

        try:
            msg_id = self.kc.execute("", silent=True, store_history=False)
            deadline = time.monotonic() + within
            while time.monotonic() < deadline:
                reply = run_sync(self.kc.shell_channel.get_msg)(timeout=max(0.01, deadline - time.monotonic()))
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    return reply.get("content", {}).get("status") == "ok"
        except Exception:  # noqa: BLE001 - no answer (queue.Empty), or no kernel left to ask
            return False
        return False

    def _get_timeout(self, cell):
        timeout = super()._get_timeout(cell)
        lesson = (getattr(self, "resources", None) or {}).get("nbgrader", {}).get("assignment")
        fitted = self.cell_limits.get(lesson, {}).get(cell_key(cell)) if self.cell_limits and cell else None
        if fitted is not None:  # what this cell needs, measured on the grading machine
            timeout = fitted if timeout is None else min(timeout, fitted)
        remaining = max(1, int(self._deadline - time.monotonic()))
        return remaining if timeout is None else min(timeout, remaining)

    # -- the notebook ----------------------------------------------------------------

    def preprocess(self, nb, resources=None, km=None):
        resources = resources if resources is not None else {}
        run_path = resources.get("metadata", {}).get("path")
        self._sandbox, self._uid = new_sandbox(pathlib.Path(run_path) if run_path else None)
        resources.setdefault("metadata", {})["path"] = str(self._sandbox)
        self._replay: list[str] = []
        self._deadline = time.monotonic() + self.submission_timeout
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if run_path:
                resources["metadata"]["path"] = run_path
            shutil.rmtree(self._sandbox, ignore_errors=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        meta = cell.metadata.get("nbgrader", {})
        where = _where(cell, index)
        if time.monotonic() >= self._deadline:
            cell.outputs = [_error("SubmissionTimeout", f"not run: the notebook used up its {self.submission_timeout} s "
                                                        f"time limit before {where}")]
            return cell, self.resources
        limit = self._get_timeout(cell)
        try:
            cell, _ = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            code = self._exit_status()
            why = {None: "", 0: " (exit status 0: os._exit() or a similar call)",
                   -9: " (killed: out of memory?)", -24: " (it used up its CPU-time limit)",
                   -25: " (it wrote a file larger than the limit)"}.get(code, f" (exit status {code})")
            cell.outputs = list(cell.get("outputs", [])) + [_error("KernelDied", f"the kernel died while running {where}{why}; "
                                                                   "the kernel was restarted for the next cells")]
            self._restart()
            return cell, self.resources
        except CellTimeoutError:  # no reply, not even to the interrupt (e.g. SIGINT ignored)
            cell.outputs = list(cell.get("outputs", [])) + [_error("CellTimeoutError", "unanswered")]
        timed_out = [o for o in cell.outputs if o.get("ename") == "CellTimeoutError"]
        if timed_out:
            # An interrupted loop leaves the kernel and its state intact: restart only a kernel
            # that does not answer (SIGINT ignored or caught), which costs the replay of every cell.
            restart = timed_out[0].get("evalue") == "unanswered" or not self._answers()
            cell.outputs = [o for o in cell.outputs if o.get("output_type") != "error"]
            cell.outputs.append(_error("CellTimeout", f"timed out in {where} after {limit} s; the kernel was "
                                                      + ("restarted for the next cells" if restart else "interrupted")))
            if restart:
                self._restart()
            return cell, self.resources
        if meta.get("solution") or (meta.get("locked") and not meta.get("grade")):
            if not any(o.get("output_type") == "error" for o in cell.outputs):
                self._replay.append(cell.source)
        return cell, self.resources

