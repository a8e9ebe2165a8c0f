"""Isolation: the one way student code runs (notebook kernels, verification processes, ``check``).

Every process that runs a student's code is forked by a *zygote* (:mod:`autograder.zygote`),
one per grading worker, which has already imported what the lessons import. Two layers:

1. **bubblewrap**, around the zygote: a filesystem made of what a kernel needs and nothing
   else (the system folders and the Python installation read-only, the course's
   ``cnn_course`` and ``autograder`` packages read-only, an empty ``/tmp``), so the course
   repository, the grading workspace, the gradebook, the submissions, the output folder,
   the grader's home and every path in ``CNN_GRADER_HIDE`` are simply not there; new PID,
   network, IPC and UTS namespaces; ``no_new_privs``; killed with the grading worker.
2. **per process**, in the zygote's child before any student code: its own mount, PID,
   network (loopback only), IPC and UTS namespaces; one size-limited tmpfs for its
   ``/tmp``, ``/dev/shm`` and working folder; no capabilities at all, and a fresh
   unprivileged uid when the grader runs as root; resource limits.

When bubblewrap or the namespaces it needs are missing, nothing runs unless the
instructor accepts the weaker isolation explicitly (``grade --accept-weak-isolation``,
or ``CNN_GRADER_ACCEPT_WEAK_ISOLATION=1``): then only a fresh folder and the resource
limits apply. ``python -m autograder doctor`` prints what this machine gives.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Dict, Integer, Type, Unicode, default

ZYGOTE_PY = str(pathlib.Path(__file__).with_name("zygote.py"))
THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                    "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}
# Capabilities the zygote keeps (inside its namespaces) to build each child's sandbox; every child drops them all.
ZYGOTE_CAPS = ("CAP_SYS_ADMIN", "CAP_SETPCAP", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER")
STARTUP_TIMEOUT_S = 300  # preloading PyTorch on a busy machine


class IsolationUnavailable(RuntimeError):
    """The sandbox cannot be had on this machine, and weaker isolation was not accepted."""


def accept_weak() -> bool:
    return os.environ.get("CNN_GRADER_ACCEPT_WEAK_ISOLATION", "0") == "1"


def limits() -> dict:
    from .config import KERNEL_LIMITS

    return dict(KERNEL_LIMITS)


def sandbox_env() -> dict[str, str]:
    """The environment of every sandboxed process: one thread per library, no display, the grading mode."""
    env = {**THREAD_ENV, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "USER": "student",
           "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1", "CNN_COURSE_MODE": "smoke",
           "MPLCONFIGDIR": "/tmp/.matplotlib", "XDG_CACHE_HOME": "/tmp/.cache"}  # fontconfig's cache: private /tmp
    # Lessons 08/09 re-run their training cells when graded: always in the small "smoke" mode (the
    # checkpoint the student submitted is what gets measured), on the instructor's CIFAR-10 copy if named.
    if os.environ.get("CNN_COURSE_CIFAR10"):
        env["CNN_COURSE_CIFAR10"] = os.environ["CNN_COURSE_CIFAR10"]
    return env


# -- what the sandbox shows --------------------------------------------------------------------


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def exposed_paths(hide: list[str]) -> list[str]:
    """Folders bound read-only into the sandbox besides the system's: the Python installation, the course's
    packages, its data folder, the instructor's CIFAR-10. A folder that holds a hidden path is never bound whole."""
    import autograder
    import cnn_course

    packages = [os.path.dirname(cnn_course.__file__), os.path.dirname(autograder.__file__)]
    python_home = os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, python_home,
                  *packages, *dataset_paths(), *(p for p in sys.path if p)]
    hidden = [os.path.realpath(h) for h in hide]
    paths = []
    for path in dict.fromkeys(os.path.realpath(p) for p in candidates if p and os.path.isdir(p)):
        if path in packages or not any(_inside(h, path) for h in hidden):
            paths.append(path)
    return sorted(p for p in paths if not any(_inside(p, q) for q in paths if q != p))


def dataset_paths() -> list[str]:
    """Folders of datasets, labels included (the course's ``data/``, the instructor's CIFAR-10). Kernels see
    them read-only (lesson 08's in-kernel checkpoint test); verification processes do not: they are sent
    the images by the grader and must never find the labels (:func:`start_script`)."""
    import cnn_course

    paths = [os.path.join(os.path.dirname(os.path.dirname(cnn_course.__file__)), "data"),
             os.environ.get("CNN_COURSE_CIFAR10", "")]
    return [os.path.realpath(p) for p in paths if p and os.path.isdir(p)]


def bwrap_argv(io_root: str, hide: list[str]) -> list[str]:
    """bubblewrap's arguments for a zygote: a whitelist filesystem and new namespaces."""
    args = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() != 0:
        args.append("--unshare-user")  # root keeps its uid here; each child then takes a fresh unprivileged one
    for cap in ZYGOTE_CAPS if os.geteuid() == 0 else ZYGOTE_CAPS[:2]:
        args += ["--cap-add", cap]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc", "--ro-bind-try", "/sys", "/sys",
             "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/sandbox", "--dir", "/dev/shm"]
    exposed = exposed_paths(hide)
    system = ("/usr", "/etc", "/sys", "/proc", "/dev", "/tmp")
    for path in [*exposed, io_root]:  # folders bubblewrap creates on the way are 0700: let the child's uid through
        ancestors = [str(a) for a in reversed(pathlib.PurePath(path).parents) if str(a) != "/"]
        for folder in ancestors:
            if not any(_inside(folder, top) for top in system):
                args += ["--perms", "0755", "--dir", folder]
    for path in exposed:
        args += ["--ro-bind", path, path]
    for path in sorted({os.path.realpath(h) for h in hide}):
        if any(_inside(path, e) and path != e for e in exposed) and os.path.isdir(path):
            args += ["--tmpfs", path]  # a hidden path inside an exposed one (e.g. a copy of the solutions)
    return args + ["--bind", io_root, io_root]


def _sandbox_root() -> pathlib.Path:
    """A folder others may traverse but not list; each zygote's request folders are random names inside."""
    root = pathlib.Path(tempfile.gettempdir()) / f"cnn-sandboxes-{os.getuid()}"
    root.mkdir(mode=0o711, exist_ok=True)
    os.chmod(root, 0o711)
    return root


# -- the zygote ----------------------------------------------------------------------------------


class Zygote:
    """A warm process that forks isolated children; one per grading worker (:mod:`autograder.zygote`)."""

    def __init__(self, modules: list[str], hide: list[str], strict: bool = True):
        self.strict, self.hide = strict, hide
        self.io_root = _sandbox_root() / secrets.token_hex(8)
        self.io_root.mkdir(mode=0o711)
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [sys.executable, ZYGOTE_PY, str(theirs.fileno()), *modules]
        if strict:
            command = [*bwrap_argv(str(self.io_root), hide), "--", *command]
        self.proc = subprocess.Popen(command, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                                     env=sandbox_env(), cwd="/")
        theirs.close()
        self.exits: dict[int, int] = {}
        self.ready: list[str] | None = None
        try:
            self._wait_for("ready", STARTUP_TIMEOUT_S)
        except RuntimeError:
            self.close()
            raise

    def alive(self) -> bool:
        return self.proc.poll() is None and self.sock.fileno() >= 0

    def _receive(self, timeout: float | None) -> dict | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except (TimeoutError, BlockingIOError):
            return None
        except OSError as exc:
            raise RuntimeError(f"the zygote is gone ({exc})") from None
        if not data:
            raise RuntimeError("the zygote exited" + (f" with status {self.proc.wait()}" if self.proc else ""))
        message = json.loads(data)
        if "exit" in message:
            self.exits[message["exit"]] = message["code"]
        if "ready" in message:
            self.ready, self.packages = message["ready"], message.get("packages", [])
        return message

    def _wait_for(self, key: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"the zygote did not answer within {timeout:.0f} s")
            message = self._receive(left)
            if message is not None and (key in message or "error" in message):
                return message

    def new_request_dir(self, files_from: pathlib.Path | None = None) -> tuple[pathlib.Path, int | None]:
        """A fresh folder for one child (its lesson files under ``files/``, notebooks left out) and the uid it will run as."""
        uid = 200_000 + secrets.randbelow(1_000_000) if self.strict and os.geteuid() == 0 else None
        io = self.io_root / secrets.token_hex(12)
        io.mkdir(mode=0o700)
        if files_from is not None and pathlib.Path(files_from).is_dir():
            shutil.copytree(files_from, io / "files", ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
        if uid is not None:
            for dirpath, _, filenames in os.walk(io):
                os.chown(dirpath, uid, uid)
                for name in filenames:
                    os.chown(os.path.join(dirpath, name), uid, uid)
        return io, uid

    def spawn(self, kind: str, argv: list[str], io: pathlib.Path, uid: int | None, fds: tuple[int, ...] = (),
              env: dict | None = None, conceal: list[str] | None = None) -> int:
        """Fork a child that isolates itself in ``io`` and becomes ``kind`` ("kernel", "script", "exec", "probe");
        the folders in ``conceal`` are emptied in its view (strict mode)."""
        request = {"kind": kind, "argv": argv, "io": str(io), "uid": uid, "strict": self.strict,
                   "limits": limits(), "env": {**sandbox_env(), **(env or {})}, "conceal": list(conceal or [])}
        socket.send_fds(self.sock, [json.dumps({"spawn": request}).encode()], list(fds))
        reply = self._wait_for("pid", 60)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["pid"]

    def signal(self, pid: int, signum: int) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(json.dumps({"signal": pid, "signum": int(signum)}).encode())

    def exit_code(self, pid: int) -> int | None:
        if pid not in self.exits:
            try:
                while self._receive(0) is not None:
                    pass
            except RuntimeError:  # zygote gone: its children died with it
                return self.exits.setdefault(pid, -signal.SIGKILL)
        return self.exits.get(pid)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.io_root, ignore_errors=True)


_zygote: Zygote | None = None
_numpy_zygote: Zygote | bool | None = None  # False: none can be had here
# What a NumPy lesson's verification process imports before student code (lessons 01-05): forked warm from a
# second zygote where torch and scipy were never loaded (their stand-ins must be the only ones there), instead
# of a fresh interpreter importing matplotlib each time (0.5 s a submission).
NUMPY_PRELOAD = ["numpy", "matplotlib", "matplotlib.pyplot", "cnn_course.checks"]
NUMPY_FORBIDDEN = ("torch", "scipy")


def live_zygote() -> Zygote | None:
    """This process's zygote, when it has one that is still running."""
    return _zygote if _zygote is not None and _zygote.alive() else None


def start_zygote(modules: list[str], hide: list[str] | None = None) -> Zygote:
    """Start this process's zygote, preloading ``modules``; every sandboxed child from now on is forked from it.

    Strict (bubblewrap) when this machine allows it; otherwise weak, if accepted, else
    :class:`IsolationUnavailable` with the reason.
    """
    global _zygote
    stop_zygote()
    from .config import hidden_paths

    hide = list(dict.fromkeys([*hidden_paths(), *(hide or [])]))
    problem = strict_problem()
    if problem and not accept_weak():
        raise IsolationUnavailable(problem)
    _zygote = Zygote(modules, hide, strict=not problem)
    return _zygote


def zygote(hide: list[str] | None = None) -> Zygote:
    """This process's zygote, started (with nothing preloaded) if it has none."""
    return live_zygote() or start_zygote([], hide)


def numpy_zygote() -> Zygote | None:
    """This process's torch-free zygote (started beside its zygote on first use), or None where one cannot be
    had without torch or scipy in it: NumPy lessons then start a fresh interpreter."""
    global _numpy_zygote
    if _numpy_zygote is False or (_numpy_zygote is not None and _numpy_zygote.alive()):
        return _numpy_zygote or None
    main = zygote()
    try:
        candidate = Zygote(NUMPY_PRELOAD, main.hide, strict=main.strict)
    except RuntimeError:
        _numpy_zygote = False
        return None
    if set(candidate.packages) & set(NUMPY_FORBIDDEN):
        candidate.close()
        _numpy_zygote = False
        return None
    _numpy_zygote = candidate
    return candidate


def stop_zygote() -> None:
    global _zygote, _numpy_zygote
    for z in (_zygote, _numpy_zygote):
        if isinstance(z, Zygote):
            z.close()
    _zygote = _numpy_zygote = None


def strict_problem() -> str:
    """'' when bubblewrap can build the strict sandbox here, else why not, in plain words."""
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux (this is {sys.platform})"
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap (or dnf/pacman install bubblewrap)"
    try:
        result = subprocess.run([*bwrap_argv("/", []), "--", "/bin/true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not run: {exc}"
    if result.returncode != 0:
        why = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit status {result.returncode}"
        return (f"bubblewrap cannot create the namespaces it needs here ({why}); grade as root, or enable "
                "unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, or an AppArmor profile "
                "for bwrap on Ubuntu 24.04)")
    return ""


# -- children --------------------------------------------------------------------------------------


class ForkedProcess:
    """The part of ``subprocess.Popen`` the grader uses, for a child the zygote forked (its pid is the zygote's)."""

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
                raise TimeoutError(f"process {self.pid} still running")
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            self.zygote.signal(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class Child(ForkedProcess):
    """A sandboxed script: write requests to ``to_child``, read replies from ``from_child`` (EOF when it ends);
    ``stderr`` (non-blocking) carries what it reports, e.g. ``CNN-VIOLATION: ...`` lines."""

    def __init__(self, zygote: Zygote, pid: int, to_child: int, from_child: int, stderr: int, io: pathlib.Path):
        super().__init__(zygote, pid)
        self.to_child, self.from_child, self.stderr, self.io = to_child, from_child, stderr, io

    def close(self) -> None:
        """Kill it, close the pipes, remove its folder."""
        with contextlib.suppress(Exception):
            self.kill()
            self.wait(timeout=10)
        for fd in (self.to_child, self.from_child, self.stderr):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.io, ignore_errors=True)


def start_script(script: str, args: list[str], files_from: pathlib.Path | None, hide: list[str] | None = None,
                 warm: bool = True) -> Child:
    """Run ``script`` as ``__main__`` with ``sys.argv = [script, IN_FD, OUT_FD, *args]`` in a fresh sandbox.

    Its working folder holds copies of ``files_from``'s files (notebooks left out).
    ``warm``: in the zygote's interpreter, with what it preloaded (lessons 06-09); otherwise in the
    torch-free zygote's (:func:`numpy_zygote`: lessons 01-05, where torch must stay out), or where there is
    none, a fresh ``python -I`` where nothing is loaded.
    """
    z = zygote(hide)
    if not warm and numpy_zygote() is not None:
        z, warm = numpy_zygote(), True
    io, uid = z.new_request_dir(files_from)
    to_child_r, to_child = os.pipe()
    from_child, from_child_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    try:
        pid = z.spawn("script" if warm else "exec", [script, *args], io, uid, fds=(to_child_r, from_child_w, stderr_w),
                      conceal=dataset_paths())
    finally:
        for fd in (to_child_r, from_child_w, stderr_w):
            os.close(fd)
    os.set_blocking(stderr_r, False)
    return Child(z, pid, to_child, from_child, stderr_r, io)


def probe(look_for: list[str], hide: list[str] | None = None) -> dict:
    """Facts from inside a sandboxed child (uid, capabilities, processes, network, visible paths...)."""
    z = zygote(hide)
    io, uid = z.new_request_dir()
    facts_r, facts_w = os.pipe()
    try:
        pid = z.spawn("probe", list(look_for), io, uid, fds=(os.open(os.devnull, os.O_RDONLY), facts_w), env={})
    finally:
        os.close(facts_w)
    with os.fdopen(facts_r) as f:
        text = f.read()
    ForkedProcess(z, pid).wait(timeout=30)
    shutil.rmtree(io, ignore_errors=True)
    return {**json.loads(text or "{}"), "strict": z.strict}


# -- notebook kernels --------------------------------------------------------------------------------


# What a sandboxed kernel can make the grading worker hold: no message larger than this (a larger one ends the
# connection: the cell then times out), and few queued, since a kernel that prints in a loop sends faster than
# the worker reads, and ZeroMQ would otherwise queue up to 1000 messages of any size (measured: 2 GB).
MAX_KERNEL_MESSAGE = 16 << 20
KERNEL_QUEUE = 16


class BoundedKernelClient(AsyncKernelClient):
    """The grader's end of a sandboxed kernel's channels, bounded as above."""

    @default("context")
    def _context_default(self) -> zmq.asyncio.Context:
        context = super()._context_default()
        context.setsockopt(zmq.MAXMSGSIZE, MAX_KERNEL_MESSAGE)  # defaults for every socket made from it
        context.setsockopt(zmq.RCVHWM, KERNEL_QUEUE)
        return context


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel is forked, already isolated, from this process's zygote, over Unix sockets
    in its request folder (the kernel has its own network namespace, where the grader's localhost is not)."""

    client_factory = Type(klass=BoundedKernelClient)
    io_dir = Unicode("")
    run_as = Integer(None, allow_none=True)
    extra_env = Dict({})

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        if kernel_cmd[1:3] != ["-m", "ipykernel_launcher"]:
            raise RuntimeError(f"only ipykernel kernels can be sandboxed, not {kernel_cmd[:3]}")
        z = zygote()
        pid = z.spawn("kernel", kernel_cmd[3:], pathlib.Path(self.io_dir), self.run_as, env=self.extra_env)
        provisioner = self.provisioner
        provisioner.process = ForkedProcess(z, pid)
        # Its pid is the zygote's (another PID namespace): signals go through the zygote, never os.killpg.
        provisioner.pid, provisioner.pgid = pid, None
        provisioner.cwd = kw.get("cwd")
        self._reconcile_connection_info(provisioner.connection_info)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if self.run_as is not None:
            os.chown(self.connection_file, self.run_as, self.run_as)
        return cmd


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
