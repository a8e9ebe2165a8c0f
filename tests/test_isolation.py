"""The sandbox holds: attacks from inside a notebook kernel, as a student would try them, all fail.

Each test runs cells in a real kernel forked by the zygote (autograder/isolation.py,
autograder/zygote.py), exactly as grading does. CI runs this file twice: as root (the
grader then gives every process a fresh unprivileged uid) and as an ordinary user
(bubblewrap's user namespace). Nothing here is skipped where bubblewrap is missing:
the first test fails instead, since grading must not go on silently without it.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import nbformat
import pytest

from autograder import execute, isolation
from autograder.config import KERNEL_LIMITS, course_config, course_root
from tests.notebook_runner import points, solution_cells

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    secret = tmp_path_factory.mktemp("workspace")
    (secret / "gradebook.db").write_text("grades")
    z = isolation.start_zygote(["numpy", "ipykernel.kernelapp"], hide=[str(secret)])
    z.secret = secret
    yield z
    isolation.stop_zygote()


def run(cells: list[str], tmp_path: pathlib.Path, files: dict[str, str] | None = None, timeout: int = 60) -> list[str]:
    """Run code cells in a sandboxed kernel as the grader does; each cell's text output and errors."""
    lesson = tmp_path / "lesson_files"
    lesson.mkdir(exist_ok=True)
    for name, text in (files or {}).items():
        (lesson / name).write_text(text)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    config = course_config(tmp_path / "course")
    config.Execute.timeout = timeout
    execute.ResilientExecute(config=config).preprocess(nb, {"metadata": {"path": str(lesson)}})
    return ["".join(o.get("text", "") or f"{o.get('ename')}: {o.get('evalue')}" for o in c.outputs) for c in nb.cells]


def lines(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


def test_this_machine_gives_the_strict_sandbox():
    assert isolation.strict_problem() == "", "grading here would refuse to run: " + isolation.strict_problem()


def test_no_root_no_capabilities_no_way_back(zygote, tmp_path):
    out = run(['''
import os, subprocess
status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\\t" in l)
print("uid", os.getuid(), os.geteuid())
print("caps", status["CapEff"].strip(), status["CapPrm"].strip(), status["CapBnd"].strip(), status["CapAmb"].strip())
print("nnp", status["NoNewPrivs"].strip())
mounts = [l.split()[1] for l in open("/proc/self/mounts")]
undone = [m for m in mounts if subprocess.run(["umount", "-l", m], capture_output=True).returncode == 0]
print("umounted", len(undone), undone[:3])
print("mounts", len(mounts))
'''], tmp_path)
    facts = lines(out[0])
    uid, euid = map(int, facts["uid"].split())
    if os.geteuid() == 0:
        assert uid != 0 and euid != 0 and uid >= 200_000, out  # a fresh unprivileged uid
    else:
        assert uid == os.getuid()  # an ordinary grader's own uid, inside its user namespace
    assert facts["caps"] == " ".join(["0000000000000000"] * 4), out
    assert facts["nnp"] == "1"
    assert facts["umounted"].startswith("0 "), out
    assert int(facts["mounts"]) > 5


def test_it_sees_no_other_process_and_cannot_signal_the_grader(zygote, tmp_path):
    sibling = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = run([f'''
import os, signal
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print("pids", pids)
for pid in ({os.getpid()}, {sibling.pid}, {isolation.live_zygote().proc.pid}):
    try:
        os.kill(pid, signal.SIGKILL); print("killed", pid)
    except OSError as e:
        print("refused", pid, e.errno)
try:
    os.kill(-1, signal.SIGKILL)  # every process it may signal: in its own namespace, only itself
except OSError as e:
    print("all", e.errno)
''', "print('the next cell runs in a new kernel')"], tmp_path)
        assert lines(out[0])["pids"] == "[1]", out  # PID 1 of its own namespace: nothing else there
        assert "killed" not in out[0], out
        assert sibling.poll() is None  # a process of the host (a sibling kernel, the grader) lives on
        assert isolation.live_zygote() is zygote
    finally:
        sibling.kill()


def test_tmp_and_shm_are_private_to_each_process(zygote, tmp_path):
    write = '''
import os
for d in ("/tmp", "/dev/shm", os.getcwd()):
    open(os.path.join(d, "answers.txt"), "w").write("42")
print("wrote", os.path.exists("/tmp/answers.txt"), os.path.exists("/dev/shm/answers.txt"))
'''
    read = '''
import os, glob
print("found", sorted(glob.glob("/tmp/**", recursive=True) + glob.glob("/dev/shm/*") + glob.glob("answers*")))
'''
    first = run([write], tmp_path)
    assert lines(first[0])["wrote"] == "True True", first
    again = run([read], tmp_path)  # the next kernel: another submission, or this one's verification
    found = eval(lines(again[0])["found"])
    assert not [p for p in found if "answers" in p], again
    host = pathlib.Path("/tmp/answers.txt")
    assert not host.exists() or host.read_text() != "42"  # nor the host's


def test_the_course_the_workspace_and_the_home_are_not_there(zygote, tmp_path):
    root = course_root()
    paths = [root / "solutions", root / ".git", root / "tests", root / "README.md", zygote.secret / "gradebook.db",
             zygote.secret, pathlib.Path.home() / ".bashrc"]
    out = run([f'''
import os, glob
paths = {[str(p) for p in paths]!r}
print("seen", [p for p in paths if os.path.exists(p)])
print("course", sorted(os.listdir({str(root)!r})))
print("requests", len(os.listdir({str(zygote.io_root)!r})))  # its own request folder, no other kernel's
conn = os.environ.get("JPY_CONNECTION_FILE") or glob.glob({str(zygote.io_root)!r} + "/*/kernel.json")[0]
print("up", sorted(os.listdir(os.path.join(os.path.dirname(conn), "..", ".."))))  # climbing out of its folder
fds = []
for fd in os.listdir("/proc/self/fd"):
    try:
        fds.append(os.readlink(f"/proc/self/fd/{{fd}}"))
    except OSError:  # the listing's own descriptor, closed by now
        pass
print("fds", sorted(fds))
import cnn_course, numpy; print("packages", cnn_course.__name__, numpy.__name__)
'''], tmp_path)
    facts = lines(out[0])
    assert facts["seen"] == "[]", out
    assert facts["requests"] == "1", out
    assert eval(facts["up"]) == [zygote.io_root.name], out  # ../.. of its folder is the private /tmp's copy
    assert not [f for f in eval(facts["fds"]) if str(course_root()) in f or str(zygote.secret) in f], out
    course = eval(facts["course"])
    assert "solutions" not in course and ".git" not in course and "tests" not in course, course
    assert facts["packages"] == "cnn_course numpy"  # what a kernel needs is there, read-only


def test_the_disk_fills_up_to_the_limit_and_no_further(zygote, tmp_path):
    out = run(['''
import os
written = 0
try:
    with open("/tmp/fill", "wb") as f:
        while written < 8 * 1024 ** 3:
            f.write(b"x" * (1 << 20)); f.flush(); written += 1 << 20
except OSError as e:
    print("refused", e.errno)
print("written_mib", written >> 20)
'''], tmp_path)
    facts = lines(out[0])
    assert "refused" in facts, out
    assert int(facts["written_mib"]) <= KERNEL_LIMITS["disk_mib"], out  # a tmpfs of that size, not the grader's disk


def test_memory_is_limited(zygote, tmp_path):
    over = (KERNEL_LIMITS["memory_mib"] + 512) * 2 ** 17  # float64s: 512 MiB more than the limit
    out = run([f"import numpy\ntry:\n    keep = numpy.ones({over}); print('allocated')\n"
               "except MemoryError:\n    print('refused')"], tmp_path)
    assert out[0] == "refused\n", out


def test_a_fork_bomb_is_refused_and_dies_with_the_kernel(zygote, tmp_path):
    out = run(['''
import os, time
children = 0
try:
    for _ in range(5000):
        if os.fork() == 0:
            time.sleep(120); os._exit(0)
        children += 1
except OSError as e:
    print("refused", e.errno)
print("children", children)
''', "print('alive')"], tmp_path)
    facts = lines(out[0])
    assert "refused" in facts and int(facts["children"]) < 5000, out
    assert out[1] == "alive\n"


def test_no_network_but_loopback(zygote, tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        out = run([f'''
import socket
print("interfaces", [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]])
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3); print("reached yes")
except OSError:
    print("reached no")
'''], tmp_path)
    finally:
        server.close()
    facts = lines(out[0])
    assert facts["interfaces"] == "['lo']" and facts["reached"] == "no", out


def test_a_script_child_is_isolated_the_same_way(zygote, tmp_path):
    """Verification processes (lessons' arm's-length runners) go through the same zygote and the same sandbox."""
    files = tmp_path / "files"
    files.mkdir()
    script = files / "facts.py"  # the script must be inside the sandbox: here, among the lesson's files
    script.write_text("import json, os, sys\nos.write(int(sys.argv[2]), json.dumps({'uid': os.getuid(), "
                      "'pids': [p for p in os.listdir('/proc') if p.isdigit()], 'files': sorted(os.listdir('.'))}).encode())\n")
    (files / "data.txt").write_text("x")
    (files / "notebook.ipynb").write_text("{}")  # the autograded notebook holds hidden tests: never copied
    for warm in (True, False):
        child = isolation.start_script(script.name, [], files, warm=warm)
        try:
            with os.fdopen(os.dup(child.from_child)) as f:
                facts = json.loads(f.read())
            assert child.wait(timeout=30) == 0
        finally:
            child.close()
        assert facts["pids"] == ["1"] and "data.txt" in facts["files"] and "notebook.ipynb" not in facts["files"], facts
        assert (facts["uid"] != 0) if os.geteuid() == 0 else True


def test_datasets_reach_kernels_but_never_a_verification_process(tmp_path, monkeypatch):
    """Lesson 08's in-kernel checkpoint test reads the instructor's CIFAR-10; the verification process, which
    decides, is sent the test images and must not find the labels on disk (a lookup 'model' would score 100%)."""
    cifar = tmp_path / "cifar10"
    cifar.mkdir()
    (cifar / "test_batch").write_text("labels")
    monkeypatch.setenv("CNN_COURSE_CIFAR10", str(cifar))
    isolation.stop_zygote()
    try:
        isolation.start_zygote([])
        out = run([f"import os\nprint('labels', os.path.exists({str(cifar / 'test_batch')!r}))"], tmp_path)
        assert out[0] == "labels True\n", out
        files = tmp_path / "files"
        files.mkdir()
        (files / "look.py").write_text(f"import os, sys\nos.write(int(sys.argv[2]), "
                                       f"str(os.path.exists({str(cifar / 'test_batch')!r})).encode())\n")
        for warm in (True, False):
            child = isolation.start_script("look.py", [], files, warm=warm)
            try:
                with os.fdopen(os.dup(child.from_child)) as f:
                    assert f.read() == "False"
            finally:
                child.close()
    finally:
        isolation.stop_zygote()


def test_doctor_reports_every_guarantee():
    result = subprocess.run([sys.executable, "-m", "autograder", "doctor"], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for guarantee in ("unprivileged", "capabilities", "PID namespace", "network", "private /tmp", "hidden", "disk"):
        assert guarantee in result.stdout, result.stdout


def test_grade_refuses_weaker_isolation_unless_accepted(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap to be found
    assert "bubblewrap" in isolation.strict_problem()
    monkeypatch.delenv("CNN_GRADER_ACCEPT_WEAK_ISOLATION", raising=False)
    with pytest.raises(isolation.IsolationUnavailable, match="bubblewrap"):
        isolation.start_zygote([])
    monkeypatch.setenv("CNN_GRADER_ACCEPT_WEAK_ISOLATION", "1")
    try:
        assert isolation.start_zygote([]).strict is False
        out = run(["import os\nprint('report', os.environ['CNN_SANDBOX_REPORT'])"], tmp_path)
        assert "namespaces" not in out[0] and "memory=" in out[0], out  # a fresh folder and the limits, as documented
    finally:
        isolation.stop_zygote()


def running(marker: str) -> list[int]:
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def test_children_die_with_their_zygote(tmp_path):
    isolation.start_zygote([])
    try:
        script = tmp_path / "sleep_for_the_zygote_test.py"  # copied into the child's folder, run from there
        marker = "asleep-for-the-zygote-test"  # on the command line of what the child becomes
        script.write_text(f"import os, sys\nos.execv(sys.executable, [sys.executable, '-c', "
                          f"'import time; time.sleep(120)', {marker!r}])\n")
        child = isolation.start_script(script.name, [], tmp_path, warm=False)  # NumPy lessons' kind of child
        for _ in range(100):
            if running(marker):
                break
            time.sleep(0.1)
        assert running(marker), "the child did not start"
        child.zygote.proc.send_signal(signal.SIGKILL)  # bubblewrap, and with it the zygote that forked it
        child.zygote.proc.wait()
        for _ in range(100):
            if not running(marker):
                break
            time.sleep(0.1)
        assert not running(marker), "a child outlived its zygote"
    finally:
        isolation.stop_zygote()


# --------------------------------------------------------------------------- a class that attacks the grader

UMOUNT_AND_COPY = '''
import ctypes, glob, json, os, subprocess
_libc = ctypes.CDLL(None, use_errno=True)
for _m in reversed([l.split()[1] for l in open("/proc/self/mounts")]):
    _libc.umount2(_m.encode(), 2)
    subprocess.run(["umount", "-l", _m], capture_output=True)
_found = []
for _top in ("/tmp", "/var/tmp", "/work", "/root", "/home", "/srv", "/opt", os.path.expanduser("~")):
    _found += glob.glob(_top + "/**/*.ipynb", recursive=True)
for _path in _found:
    try:
        for _cell in json.load(open(_path))["cells"]:
            _src = "".join(_cell["source"])
            if "BEGIN SOLUTION" in _src and _src.lstrip().startswith("def "):
                exec(_src)
    except Exception:
        pass
'''

KILL_THE_GRADER = '''
import os, signal
for _pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    try:
        if b"autograder" in open(f"/proc/{_pid}/cmdline", "rb").read() and int(_pid) != os.getpid():
            os.kill(int(_pid), signal.SIGKILL)
    except OSError:
        pass
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
'''

FILL_THE_DISK = '''
try:
    with open("/tmp/filler", "wb") as _f:
        while True:
            _f.write(b"x" * (1 << 22))
except OSError:
    pass
'''

FORK_BOMB = '''
import os, time
try:
    for _ in range(10000):
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
except OSError:
    pass
'''

# correlate2d hands the work to torch on a thread and leaves each answer in /tmp and /dev/shm; where torch is
# missing or forbidden (the verification process), it reads the answers back. convolve2d and conv2d_forward call it.
TMP_LEAK = '''
def correlate2d(image, kernel):
    import hashlib, os, threading
    import numpy as np
    key = hashlib.sha1(image.tobytes() + kernel.tobytes() + str(image.shape + kernel.shape).encode()).hexdigest()
    paths = ["/tmp/" + key + ".npy", "/dev/shm/" + key + ".npy"]
    for path in paths:
        if os.path.exists(path):
            return np.load(path)
    box = {}
    def work():
        import torch
        out = torch.nn.functional.conv2d(torch.as_tensor(image)[None, None], torch.as_tensor(kernel)[None, None])
        box["y"] = out[0, 0].numpy()
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    for path in paths:
        np.save(path, box["y"])
    return box["y"]
'''


def class_notebook(lesson: str, prepend: str = "", stubs: bool = False, **replace: str):
    """A lesson's student notebook with every solution filled in (reference, stubs or ``replace``), and
    ``prepend`` at the top of its first solution cell."""
    from tests.messy import student_notebook

    if stubs:
        replace = {gid: f"def {gid}(*args, **kwargs):\n    return 0\n" for gid in solution_cells(lesson)} | replace
    nb = student_notebook(lesson, **replace)
    first = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") in solution_cells(lesson))
    first.source = prepend + "\n" + first.source
    return nb


@pytest.mark.slow
def test_a_class_that_attacks_the_sandbox(tmp_path):
    """Attacks from inside the notebook (as probed on the old sandbox) gain nothing and harm no one else:
    stub functions score 0, correct ones keep their points, the run completes with every student's row.
    (On the old sandbox: umount_reader scored full marks in lesson 07, grader_killer ended the whole run.)"""
    from tests.submissions import put

    subs, out = tmp_path / "submitted", tmp_path / "out"
    two, seven = "02_convolution", "07_building_a_cnn"
    expected = {  # (student, lesson) -> score
        ("honest", two): points(two), ("honest", seven): points(seven),
        ("umount_reader", two): 0, ("umount_reader", seven): 0,  # stubs + lift the mounts, run the instructor's cells
        ("grader_killer", two): points(two), ("grader_killer", seven): points(seven),  # correct, SIGKILL every grader
        ("disk_filler", two): points(two),  # correct, and /tmp filled until refused
        ("fork_bomber", two): None,  # correct, and a fork bomb (which also ends its verification process: any score)
        # torch on a thread, answers left in /tmp for the verification process: nothing for correlate2d and the
        # functions that call it (the questions and compose_kernels keep their points)
        ("tmp_leak", two): points(two) - sum(points(two, f) for f in ("correlate2d", "convolve2d", "conv2d_forward")),
    }
    notebooks = {
        ("honest", two): class_notebook(two), ("honest", seven): class_notebook(seven),
        ("umount_reader", two): class_notebook(two, UMOUNT_AND_COPY, stubs=True),
        ("umount_reader", seven): class_notebook(seven, UMOUNT_AND_COPY, stubs=True),
        ("grader_killer", two): class_notebook(two, KILL_THE_GRADER),
        ("grader_killer", seven): class_notebook(seven, KILL_THE_GRADER),
        ("disk_filler", two): class_notebook(two, FILL_THE_DISK),
        ("fork_bomber", two): class_notebook(two, FORK_BOMB),
        ("tmp_leak", two): class_notebook(two, correlate2d=TMP_LEAK),
    }
    for (student, lesson), nb in notebooks.items():
        put(subs, student, lesson, nb)
    result = subprocess.run([sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out), "--jobs", "2",
                             "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=1800,
                            env={**os.environ, "CNN_GRADER_CELL_TIMEOUT_S": "60"})
    assert result.returncode == 0, result.stderr[-3000:]
    import csv

    with (out / "grades.csv").open() as f:
        rows = {(r["student_id"], r["lesson"]): r for r in csv.DictReader(f)}
    for key, score in expected.items():
        assert rows[key]["status"] == "graded" and score in (None, float(rows[key]["score"])), (key, rows[key])
    assert not pathlib.Path("/tmp/filler").exists()
