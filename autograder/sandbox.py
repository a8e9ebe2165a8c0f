"""Run student code (the notebook kernel, the verification runner) in a sandbox.

``python autograder/sandbox.py CONFIG_JSON -- COMMAND...`` applies, in order, and
then ``exec``s COMMAND:

1. a new network namespace (no network: only a loopback that nothing listens on)
   and a new mount namespace, where the kernel may create them (root, or an
   unprivileged user namespace);
2. in that mount namespace, an empty tmpfs over every ``hide`` path (the course's
   ``solutions/``, ``tests/`` and ``.git``, the grading workspace with ``source/`` and
   the gradebook, the submissions, the output folder, the grader's home), with the
   ``expose`` paths (the Python installation, the helper package) bound back in;
3. a fresh unprivileged uid (when started as root and the Python installation is
   reachable by other users), so file permissions and other kernels' processes are
   out of reach;
4. resource limits: memory (RLIMIT_DATA and RLIMIT_AS), CPU seconds, file size,
   number of processes, core dumps off.

Each step that the operating system refuses is skipped and reported in
``$CNN_SANDBOX_REPORT`` (one word per step that took effect); see the README for
what this does and does not guarantee. This file uses the standard library only,
so it can run before anything else is imported.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import resource
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount(libc, source, target, fstype, flags, data=None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    if libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _traversable_by_others(path: str) -> bool:
    """Whether a user with no special rights can reach ``path`` (every ancestor o+x)."""
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    for i in range(2, len(parts) + 1):
        p = os.sep.join(parts[:i]) or os.sep
        try:
            if not os.stat(p).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def isolate(cfg: dict) -> list[str]:
    """Apply namespaces, mounts and the uid change; return what took effect."""
    done = []
    libc = _libc()
    root = os.geteuid() == 0
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | (CLONE_NEWNET if cfg.get("no_network", True) else 0)
    namespaces = False
    if cfg.get("namespaces", True):
        if root and libc.unshare(flags) == 0:
            namespaces = True
        elif not root and libc.unshare(flags | CLONE_NEWUSER) == 0:
            namespaces = True
            try:  # map ourselves to ourselves; we keep full capabilities in the new namespace until exec
                _write("/proc/self/setgroups", "deny")
                _write("/proc/self/uid_map", f"{uid} {uid} 1")
                _write("/proc/self/gid_map", f"{gid} {gid} 1")
            except OSError:
                pass
    if namespaces:
        if cfg.get("no_network", True):
            done.append("network")
        try:
            _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
            hide = sorted({os.path.realpath(p) for p in cfg.get("hide", []) if os.path.isdir(p)}, key=len)
            inside = lambda path, top: path.startswith(top.rstrip("/") + "/")  # noqa: E731
            # Paths the sandboxed process needs that lie under a hidden one (e.g. a Python
            # installed in the grader's home): keep a handle now, bind them back afterwards.
            expose = {}
            for path in cfg.get("expose", []):
                path = os.path.realpath(path)
                if os.path.isdir(path) and any(inside(path, h) for h in hide):
                    expose[path] = os.open(path, os.O_PATH)
            for path in hide:
                if not any(inside(path, h) for h in hide if h != path):  # outermost only
                    _mount(libc, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
            for path, fd in sorted(expose.items()):
                os.makedirs(path, exist_ok=True)
                _mount(libc, f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
                _mount(libc, None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
                os.close(fd)
            done.append("hidden-paths")
        except OSError as exc:
            done.append(f"mount-failed({exc.strerror})")
    new_uid = cfg.get("uid")
    if root and new_uid is not None and all(_traversable_by_others(p) for p in cfg.get("must_reach", [])):
        os.setgroups([])
        os.setgid(new_uid)
        os.setuid(new_uid)
        done.append("unprivileged-uid")
    return done


def limit(cfg: dict) -> list[str]:
    done = []
    mib = 1024 * 1024

    def setl(which, value):
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))

    if cfg.get("memory_mib"):
        setl(resource.RLIMIT_DATA, int(cfg["memory_mib"]) * mib)
        done.append(f"memory={cfg['memory_mib']}MiB")
    if cfg.get("address_space_mib"):
        setl(resource.RLIMIT_AS, int(cfg["address_space_mib"]) * mib)
    if cfg.get("cpu_s"):
        setl(resource.RLIMIT_CPU, int(cfg["cpu_s"]))
        done.append(f"cpu={cfg['cpu_s']}s")
    if cfg.get("file_mib"):
        setl(resource.RLIMIT_FSIZE, int(cfg["file_mib"]) * mib)
        done.append(f"file={cfg['file_mib']}MiB")
    if cfg.get("nproc") and os.getuid() != 0:  # RLIMIT_NPROC counts every process of the uid; root ignores it
        setl(resource.RLIMIT_NPROC, int(cfg["nproc"]))
        done.append(f"nproc={cfg['nproc']}")
    setl(resource.RLIMIT_CORE, 0)
    return done


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: sandbox.py CONFIG_JSON -- COMMAND...\n")
        sys.exit(2)
    cfg = json.loads(argv[0])
    command = argv[2:]
    done = isolate(cfg)
    if cfg.get("cwd"):
        os.chdir(cfg["cwd"])
    done += limit(cfg)
    os.environ["CNN_SANDBOX_REPORT"] = " ".join(done)
    os.environ["HOME"] = cfg.get("cwd") or os.environ.get("HOME", "/tmp")
    os.environ.update(cfg.get("env", {}))  # thread counts, lesson mode, data location
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
