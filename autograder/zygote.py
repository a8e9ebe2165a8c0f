"""The process inside the sandbox that forks every process running student code.

Started by :mod:`autograder.isolation` (inside bubblewrap, or plainly in weak mode) as
``python zygote.py CONTROL_FD MODULE...``. It imports the modules it is given once
(NumPy, PyTorch, ipykernel...: several seconds a kernel would otherwise pay), then
serves requests on CONTROL_FD, a ``SOCK_SEQPACKET`` socket: one JSON object per packet,
with the file descriptors the child needs attached (``SCM_RIGHTS``).

A request ``{"spawn": {...}}`` forks a child that isolates itself *before* anything of the
student's runs (:func:`isolate`), then becomes an ipykernel (``"kernel"``), runs a Python
script in this warm interpreter (``"script"``), or ``exec``s a fresh interpreter on a
script (``"exec"``: nothing preloaded, for the NumPy lessons, where torch must stay out).
Each child, in strict mode:

- enters new mount, PID, network, IPC and UTS namespaces, and forks once more so that the
  student's process is PID 1 of its own namespace (it sees no other process, not even
  this zygote) while an intermediate process relays signals and the exit status;
- mounts a fresh ``/proc``, and one size-limited tmpfs that holds its ``/tmp``, its
  ``/dev/shm`` and its working folder (the lesson's files are copied in), so nothing it
  writes reaches any other process or the disk;
- sees only its own request folder (kernel sockets and connection file) of the grader's;
- gives up every capability: a fresh unprivileged uid when the grader is root, an empty
  capability set otherwise; ``no_new_privs`` (set by bubblewrap) makes that permanent,
  so mounts cannot be undone;
- applies the resource limits (memory, CPU time, file size, processes, no core dumps).

Replies: ``{"pid": N}`` (or ``{"error": ...}``) for each spawn, ``{"exit": N, "code": C}``
when a child ends (``C`` as ``subprocess.Popen.returncode``: negative for a signal), and
``{"ready": [modules loaded], "packages": [top-level packages in memory]}`` at start.
``{"signal": N, "signum": S}`` signals a child.
When the control socket closes, the zygote kills its children and exits. Standard
library only (plus the modules it preloads).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x4000000, 0x8000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 1, 24, 38, 47, 4
PRIVATE = "/sandbox"  # the child's tmpfs (bubblewrap creates the empty folder); /tmp and /dev/shm are bound from it
MIB = 1024 * 1024
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda s: None if s is None else str(s).encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities(uid: int | None) -> None:
    """Give up every capability, for good: bounding set, then a fresh uid (root) or an empty set."""
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root to another uid: the kernel clears every capability
    _check(_libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), (_CapData * 2)()), "capset")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    status = open("/proc/self/status").read()
    if "CapEff:\t0000000000000000" not in status or "CapPrm:\t0000000000000000" not in status:
        raise OSError("capabilities are still held after dropping them")


def _private_filesystem(io_dir: str, disk_mib: int, uid: int | None, conceal: list[str]) -> str:
    """Fresh /proc, one size-limited tmpfs for /tmp, /dev/shm and the working folder; only ``io_dir`` of the grader's;
    the folders in ``conceal`` (datasets with their labels, for verification processes) empty."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in conceal:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    io_fd = os.open(io_dir, os.O_PATH)
    # Folders the sandbox shows under /tmp (a dataset, say) must survive /tmp becoming private: keep a handle.
    under_tmp = [line.split()[1] for line in open("/proc/self/mounts")]
    under_tmp = {path: os.open(path, os.O_PATH) for path in under_tmp
                 if path.startswith("/tmp/") and not io_dir.startswith(path) and not path.startswith(os.path.dirname(io_dir))}
    _mount("tmpfs", PRIVATE, "tmpfs", MS_NOSUID | MS_NODEV, f"size={disk_mib}m,mode=0755")
    for name, mode in (("tmp", 0o1777), ("shm", 0o1777), ("work", 0o700)):
        os.mkdir(f"{PRIVATE}/{name}")
        os.chmod(f"{PRIVATE}/{name}", mode)
    for source, target in ((f"{PRIVATE}/tmp", "/tmp"), (f"{PRIVATE}/shm", "/dev/shm")):
        _mount(source, target, None, MS_BIND)
    for path, fd in under_tmp.items():
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND)
        _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)
    io_root = os.path.dirname(io_dir)
    if os.path.exists(io_root):  # not under /tmp: hide the other requests' folders explicitly
        _mount("tmpfs", io_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    os.makedirs(io_dir, mode=0o755, exist_ok=True)
    _mount(f"/proc/self/fd/{io_fd}", io_dir, None, MS_BIND)
    os.close(io_fd)
    work = f"{PRIVATE}/work"
    _copy_files(io_dir, work, uid)
    return work


def _copy_files(io_dir: str, work: str, uid: int | None) -> None:
    """The lesson's files (put in ``io_dir/files`` by the grader) into the working folder, owned by ``uid``."""
    files = os.path.join(io_dir, "files")
    if os.path.isdir(files):
        shutil.copytree(files, work, dirs_exist_ok=True)
    if uid is not None:
        for dirpath, _, filenames in os.walk(work):
            os.chown(dirpath, uid, uid)
            for name in filenames:
                os.chown(os.path.join(dirpath, name), uid, uid)


def limit(limits: dict) -> list[str]:
    """Resource limits of the current process; returns what was set, for the report."""
    done = []

    def setl(which, value):
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))

    if limits.get("memory_mib"):
        setl(resource.RLIMIT_DATA, int(limits["memory_mib"]) * MIB)
        done.append(f"memory={limits['memory_mib']}MiB")
    if limits.get("cpu_s"):
        setl(resource.RLIMIT_CPU, int(limits["cpu_s"]))
        done.append(f"cpu={limits['cpu_s']}s")
    if limits.get("file_mib"):
        setl(resource.RLIMIT_FSIZE, int(limits["file_mib"]) * MIB)
        done.append(f"file={limits['file_mib']}MiB")
    if limits.get("nproc") and os.getuid() != 0:  # counts every process of the uid; root ignores it
        setl(resource.RLIMIT_NPROC, int(limits["nproc"]))
        done.append(f"nproc={limits['nproc']}")
    setl(resource.RLIMIT_CORE, 0)
    return done


def isolate(request: dict) -> tuple[str, list[str]]:
    """In the forked child: namespaces, private filesystem, no capabilities, limits. Returns (working folder, report).

    In strict mode this forks once more; the intermediate process never returns from here.
    """
    done = []
    uid = request.get("uid")
    io_dir = request["io"]
    if request.get("strict"):
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
        pid = os.fork()
        if pid:
            _relay(pid)
        work = _private_filesystem(io_dir, int(request["limits"].get("disk_mib", 1024)), uid, request.get("conceal") or [])
        _drop_capabilities(uid)
        done += ["namespaces", "private-filesystem", "no-capabilities", f"disk={request['limits'].get('disk_mib')}MiB"]
        if uid is not None:
            done.append("unprivileged-uid")
    else:  # weak mode (accepted explicitly): a fresh folder and the limits, nothing more
        work = os.path.join(io_dir, "work")
        os.makedirs(work, exist_ok=True)
        _copy_files(io_dir, work, None)
    # Die with the parent (again: the uid change clears it), so nothing outlives the grader.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    done += limit(request.get("limits") or {})
    os.chdir(work)
    return work, done


def _relay(pid: int) -> None:
    """The intermediate process: forward interrupts to the isolated child, then leave as it left."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda s, _f: os.kill(pid, s if s != signal.SIGTERM else signal.SIGKILL))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(1)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # killed by a signal: die of the same one, so the grader sees why (-9, -24 CPU, -25 file size)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code & 0xFF)


def _child(request: dict, fds: list[int], zygote_pid: int) -> None:
    """In the forked child: isolate, then become what the request asks for. Never returns."""
    code = 1
    try:
        os.setsid()  # its own process group, as jupyter_client gives a kernel it launches itself
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # die with the zygote...
        if os.getppid() != zygote_pid:  # ...which may have gone before that was set
            os._exit(1)
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # The request's pipes become 3, 4, 5 (to the child, from the child, its stderr); nothing else stays open.
        for i, fd in enumerate(fds):
            os.dup2(fd, 100 + i)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        for i in range(len(fds)):
            os.dup2(100 + i, 3 + i)
        os.dup2(devnull, 100)
        os.closerange(3 + len(fds), 100)
        os.closerange(101, 1 << 16)
        work, done = isolate(request)  # a failure here is ours: its traceback goes to the grader's stderr
        os.dup2(5 if len(fds) >= 3 else 100, 2)  # a script's stderr is the grader's pipe (violations are reported there)
        os.close(100)
        os.environ.clear()
        os.environ.update(request.get("env") or {})
        os.environ["CNN_SANDBOX_REPORT"] = " ".join(done)
        os.environ["HOME"] = work
        os.environ["TMPDIR"] = "/tmp" if request.get("strict") else work  # /tmp is private only in strict mode
        os.environ["MPLCONFIGDIR"] = os.path.join(os.environ["TMPDIR"], ".matplotlib")
        if "numpy" in sys.modules:  # NumPy's global generator would otherwise repeat the zygote's stream
            sys.modules["numpy"].random.seed()
        kind, argv = request["kind"], list(request.get("argv") or [])
        del sys.path[0]  # no script folder: the working directory goes on sys.path, as in a kernel or `python -I`
        if kind == "kernel":
            # What `python -m ipykernel_launcher ARGS` would see: the launcher's path as argv[0].
            import ipykernel_launcher
            from ipykernel import kernelapp

            # The student's folder goes on sys.path after every installed package (IPython would put it before
            # them): a file uploaded beside the notebook (numpy.py, comm.py) cannot stand in for what the
            # kernel imports, now or lazily later.
            sys.argv = [ipykernel_launcher.__file__, "--ignore-cwd", *argv]
            sys.path.append(os.getcwd())
            kernelapp.launch_new_instance()
            code = 0
        elif kind == "script":
            import runpy

            sys.argv = [argv[0], "3", "4", *argv[1:]]
            runpy.run_path(argv[0], run_name="__main__")
            code = 0
        elif kind == "exec":
            for fd in range(3, 3 + len(fds)):
                os.set_inheritable(fd, True)
            os.execv(sys.executable, [sys.executable, "-I", argv[0], "3", "4", *argv[1:]])
        elif kind == "probe":
            os.write(4, json.dumps(facts(argv)).encode())
            code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - report, then leave the way a crashed process would
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def facts(look_for: list[str]) -> dict:
    """What a process in this sandbox can see and do (``python -m autograder doctor`` prints it)."""
    status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
    visible = sorted(p for p in look_for if os.path.exists(p))
    umount = _libc.umount2(b"/tmp", 2)
    interfaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
    stat = os.statvfs(".")
    return {"uid": os.getuid(), "cap_eff": status.get("CapEff", "?").strip(),
            "no_new_privs": status.get("NoNewPrivs", "?").strip(),
            "processes": sum(name.isdigit() for name in os.listdir("/proc")), "interfaces": interfaces,
            "visible": visible, "umount_refused": umount != 0, "workdir_mib": stat.f_blocks * stat.f_frsize // MIB,
            "tmp_is_workdir_fs": os.statvfs("/tmp").f_fsid == stat.f_fsid}


def _preload(modules: list[str]) -> list[str]:
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception:  # noqa: BLE001 - a module this machine lacks is simply imported later, or not at all
            pass
    return loaded


def serve(control: socket.socket, modules: list[str]) -> None:
    def send(message: dict) -> None:
        control.send(json.dumps(message).encode())

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd hears it
    send({"ready": _preload(modules), "packages": sorted({name.split(".")[0] for name in sys.modules})})
    zygote_pid = os.getpid()
    children: set[int] = set()
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ, "request")
    selector.register(wake_r, selectors.EVENT_READ, "child")
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
                    send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})
                continue
            try:
                message, fds, _, _ = socket.recv_fds(control, 1 << 20, 8)
            except ConnectionError:
                message = b""
            if not message:  # the grader is gone: so are its children
                for pid in children:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except OSError:
                        pass
                return
            request = json.loads(message)
            if "signal" in request:
                if request["signal"] in children:
                    try:
                        os.kill(request["signal"], request["signum"])
                    except OSError:
                        pass
                continue
            pid = os.fork()
            if pid == 0:
                selector.close()
                control.close()
                _child(request["spawn"], fds, zygote_pid)
            for fd in fds:
                os.close(fd)
            children.add(pid)
            send({"pid": pid})


def main(argv: list[str]) -> None:
    serve(socket.socket(fileno=int(argv[0])), argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
