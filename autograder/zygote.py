"""Kernels forked from a warm process: the libraries a lesson imports are loaded once per worker.

Starting a kernel the usual way costs a Python start-up, ipykernel's imports and then,
in the notebook's first cells, NumPy, matplotlib and PyTorch (about 2 s for torch alone,
5 s with torchvision): several seconds of every submission's grading time, spent
identically each time. A zygote pays them once. ``python autograder/zygote.py`` imports
the modules it is given, then forks one kernel per request. Each child starts from that
warm but untouched state, applies the sandbox (:func:`sandbox.isolate`, the limits, the
environment) exactly as ``sandbox.py`` does before it ``exec``s a kernel, and only then
runs ipykernel. No student code ever runs in the zygote itself.

Protocol, one JSON object per line. The grader writes
``{"argv": [...], "env": {...}, "sandbox": {...}}`` to stdin (with ``"rerun_fifos"``, three
FIFO paths, the child runs :mod:`autograder.rerun` over them instead of a kernel); the zygote answers
``{"pid": N}`` on stdout, and later ``{"exit": N, "code": C}`` when that kernel ends
(``C`` as ``subprocess.Popen.returncode``: negative for a signal). At start it prints
``{"ready": [modules loaded]}``. When stdin closes, it kills its kernels and exits.
This file uses the standard library only (plus the modules it preloads).
"""

from __future__ import annotations

import importlib
import json
import os
import selectors
import signal
import sys

import sandbox  # autograder/sandbox.py, next to this file (the script's folder is sys.path[0])

PR_SET_PDEATHSIG = 1
RERUN_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rerun.py")


def _send(message: dict) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _preload(modules: list[str]) -> list[str]:
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception:  # noqa: BLE001 - a module this machine lacks is simply imported later, or not at all
            pass
    return loaded


def _become_kernel(request: dict, zygote_pid: int) -> None:
    """In the forked child: sandbox this process, then run ipykernel with the request's arguments."""
    code = 1
    try:
        os.setsid()  # its own process group, as jupyter_client gives a kernel it launches itself
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(signum, signal.SIG_DFL if signum != signal.SIGPIPE else signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)  # the zygote's replies travel on its stdout: the kernel never holds it
        os.closerange(3, 1 << 16)
        cfg = request.get("sandbox") or {}
        done = sandbox.isolate(cfg)
        if cfg.get("cwd"):
            os.chdir(cfg["cwd"])
        done += sandbox.limit(cfg)
        # Die with the zygote (set after the uid change, which clears it), so no kernel outlives the grader.
        sandbox._libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != zygote_pid:
            os._exit(1)
        os.environ.clear()
        os.environ.update(request.get("env") or {})
        os.environ["CNN_SANDBOX_REPORT"] = " ".join(done)
        os.environ["HOME"] = cfg.get("cwd") or os.environ.get("HOME", "/tmp")
        os.environ.update(cfg.get("env", {}))
        if "numpy" in sys.modules:  # NumPy's global generator would otherwise repeat the zygote's stream in every kernel
            sys.modules["numpy"].random.seed()
        if request.get("rerun_fifos"):  # autograder/rerun.py, talking over FIFOs the grader made in the sandbox
            import runpy

            to_me, from_me, errors = request["rerun_fifos"]
            in_fd, out_fd = os.open(to_me, os.O_RDONLY), os.open(from_me, os.O_WRONLY)
            os.dup2(os.open(errors, os.O_WRONLY), 2)
            for path in request["rerun_fifos"]:
                os.unlink(path)
            del sys.path[0]
            sys.argv = [RERUN_PY, str(in_fd), str(out_fd)]
            runpy.run_path(RERUN_PY, run_name="__main__")
            os._exit(0)
        # What `python -m ipykernel_launcher ARGS` would see: the launcher's own path as argv[0]
        # and no script folder on sys.path (ipykernel puts the working directory back).
        import ipykernel_launcher

        sys.argv = [ipykernel_launcher.__file__, *request["argv"]]
        del sys.path[0]
        from ipykernel import kernelapp

        kernelapp.launch_new_instance()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - report, then leave the way a crashed kernel would
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(modules: list[str]) -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd hears it
    _send({"ready": _preload(modules)})
    zygote_pid = os.getpid()
    children: set[int] = set()
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ, "request")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    pending = b""
    while True:
        for key, _ in selector.select():
            if key.data == "child":
                os.read(wake_r, 4096)
                while children:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    children.discard(pid)
                    _send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})
                continue
            chunk = os.read(0, 1 << 20)
            if not chunk:  # the grader is gone: so are its kernels
                for pid in children:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except OSError:
                        pass
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    _become_kernel(request, zygote_pid)
                children.add(pid)
                _send({"pid": pid})


if __name__ == "__main__":
    serve(sys.argv[1:])
