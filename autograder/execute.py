"""nbgrader's Execute step, hardened: a sandboxed kernel, and faults that cost one exercise.

:class:`ResilientExecute` replaces ``nbgrader.preprocessors.Execute`` in autograde
(``Autograde.autograde_preprocessors``). It differs in three ways:

- the kernel is forked, isolated, by this process's zygote (:mod:`autograder.isolation`),
  with the lesson's files but no notebook (the autograded copy holds the hidden tests);
- when the kernel dies (``os._exit``, a crash, a limit) or a cell runs past its time
  limit, the cell gets an error output that says so, the kernel is restarted, the
  setup and solution cells that ran cleanly are replayed, and grading goes on with
  the next cell: only the exercise whose cell failed loses its points;
- a whole-submission wall-clock budget: cells after it is spent are not run and say so;
- the release's demonstration cells (marked by :func:`autograder.repair.mark_demonstrations`)
  are not run: no grade depends on them, and they are most of a lesson's run time.

The error outputs it writes have these ``ename`` values, which
:func:`autograder.grade.fault_reasons` turns into the grades.csv reason:
``KernelDied``, ``CellTimeout``, ``SubmissionTimeout`` (and Python's ``MemoryError``).
"""

from __future__ import annotations

import pathlib
import re
import shutil
import time

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Dict, Integer, List, Unicode

from . import isolation
from .limits import after_timeout, cell_key


def local_kernel_manager(kernel_name: str = "python3"):
    """An unsandboxed kernel for the instructor's own runs (measuring limits, the book, the tests) that talks over
    Unix sockets in a fresh folder, not TCP ports: kernels started side by side pick TCP ports with a race
    (jupyter_client binds a free port, lets it go, and the kernel binds it again), and a run that loses it can
    wait forever, as lesson runs in CI did. Pass it to ``NotebookClient(km=...)``."""
    import tempfile

    from jupyter_client.manager import KernelManager

    folder = pathlib.Path(tempfile.mkdtemp(prefix="cnn-kernel-"))
    return KernelManager(kernel_name=kernel_name, transport="ipc", ip=str(folder / "k"),
                         connection_file=str(folder / "kernel.json"))


NOT_RUN = "[not run when grading: a demonstration of the lesson; no grade depends on it]\n"
# Output kept per cell while it runs. A cell that prints in a loop until its time limit sends gigabytes, and
# nbclient keeps all of it in the grading worker (measured: 2.4 GB for one cell); nbgrader's LimitOutput trims
# what is kept only afterwards. Test cells print a few lines, lesson figures a few hundred kB.
MAX_CELL_OUTPUT = 4 << 20
MAX_NOTEBOOK_OUTPUT = 32 << 20  # and for the whole notebook: a student may add cells, each printing its 4 MiB
OUTPUT_TYPES = ("stream", "display_data", "execute_result", "update_display_data", "error")


FAULTS = ("KernelDied", "CellTimeout", "SubmissionTimeout")  # the enames of the error outputs written here
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def solution_errors(nb) -> list[str]:
    """What stopped a solution cell from defining its function or answer (a syntax error, bad indentation, an
    exception at definition time), with the line in the cell: "convolve2d did not run: SyntaxError at line 2
    of its cell: invalid syntax". Every test of that function fails with a NameError, which says nothing of why."""
    found = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {}) or {}
        if cell.cell_type != "code" or not meta.get("solution"):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error" or output.get("ename") in (*FAULTS, "CellTimeoutError", "MemoryError"):
                continue
            evalue = output.get("evalue", "")
            lines = re.findall(r"line (\d+)", evalue) or [n for entry in output.get("traceback", [])
                                                          for n in re.findall(r"Cell In\[\d+\], line (\d+)",
                                                                              _ANSI.sub("", entry))]
            where = f" at line {lines[-1]} of its cell" if lines else ""
            message = re.sub(r"\s*\([^()]*, line \d+\)$", "", evalue).strip()[:200]
            found.append(f"{meta.get('grade_id')} did not run: {output.get('ename')}{where}: {message}")
    return found


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _where(cell: NotebookNode, index: int) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"


class ResilientExecute(Execute):
    submission_timeout = Integer(600, help="Wall-clock seconds for the whole notebook").tag(config=True)
    cell_limits = Dict({}, help="seconds per cell, measured on the instructor's notebook: "
                             "{lesson: {cell key: s}} (autograder.limits)").tag(config=True)
    hide = List(Unicode(), help="paths the kernel must not see (when this process starts its zygote)").tag(config=True)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", isolation.SandboxedKernelManager)
        super().__init__(*args, **kwargs)

    # -- kernel lifetime ---------------------------------------------------------------

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        km.transport = "ipc"  # Unix sockets in the kernel's request folder, which both sides see
        km.ip = str(self._io / "k")
        km.connection_file = str(self._io / "kernel.json")
        km.io_dir, km.run_as = str(self._io), self._uid
        return km

    def _restart(self) -> None:
        try:
            self._cleanup_kernel()
        except Exception:  # noqa: BLE001 - the kernel is gone either way
            pass
        self.km = self.create_kernel_manager()
        self.kc = None
        self.start_new_kernel(cwd=str(self._io))
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

    def process_message(self, msg, cell, cell_index):
        """nbclient's, except that output past ``MAX_CELL_OUTPUT`` in a cell, or ``MAX_NOTEBOOK_OUTPUT`` in the
        notebook, is dropped as it arrives, with a note."""
        if msg["msg_type"] in OUTPUT_TYPES[:-1]:
            content = msg["content"]
            size = len(content.get("text", "")) + sum(len(str(v)) for v in (content.get("data") or {}).values())
            self._output_bytes = getattr(self, "_output_bytes", 0) + size
            self._notebook_output_bytes = getattr(self, "_notebook_output_bytes", 0) + size
            if self._output_bytes > MAX_CELL_OUTPUT or self._notebook_output_bytes > MAX_NOTEBOOK_OUTPUT:
                if not any(o.get("name") == "stderr" and o.get("text", "").startswith("[output cut") for o in cell.outputs):
                    cell.outputs.append(NotebookNode(output_type="stream", name="stderr", text=(
                        f"[output cut: past {MAX_CELL_OUTPUT >> 20} MiB in a cell or {MAX_NOTEBOOK_OUTPUT >> 20} MiB "
                        "in the notebook, the rest of this cell's output was not kept]\n")))
                return None
        return super().process_message(msg, cell, cell_index)

    def _get_timeout(self, cell):
        timeout = super()._get_timeout(cell)
        lesson = (getattr(self, "resources", None) or {}).get("nbgrader", {}).get("assignment")
        fitted = self.cell_limits.get(lesson, {}).get(cell_key(cell)) if self.cell_limits and cell else None
        if fitted is not None:  # what this cell needs, measured on the grading machine
            if getattr(self, "_timed_out", False) and cell_key(cell).startswith("code:"):
                fitted = after_timeout(fitted)  # a demo cell after a hang: no points depend on it
            timeout = fitted if timeout is None else min(timeout, fitted)
        remaining = max(1, int(self._deadline - time.monotonic()))
        return remaining if timeout is None else min(timeout, remaining)

    # -- the notebook ----------------------------------------------------------------

    def preprocess(self, nb, resources=None, km=None):
        resources = resources if resources is not None else {}
        run_path = resources.get("metadata", {}).get("path")
        self._io, self._uid = isolation.zygote(list(self.hide)).new_request_dir(pathlib.Path(run_path) if run_path else None)
        resources.setdefault("metadata", {})["path"] = str(self._io)
        self._replay: list[str] = []
        self._deadline = time.monotonic() + self.submission_timeout
        self._timed_out = False
        self._notebook_output_bytes = 0
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if run_path:
                resources["metadata"]["path"] = run_path
            shutil.rmtree(self._io, ignore_errors=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        if cell.metadata.get("autograder", {}).get("demonstration"):
            cell.outputs = [NotebookNode(output_type="stream", name="stdout", text=NOT_RUN)]
            return cell, self.resources
        meta = cell.metadata.get("nbgrader", {})
        where = _where(cell, index)
        if time.monotonic() >= self._deadline:
            cell.outputs = [_error("SubmissionTimeout", f"not run: the notebook used up its {self.submission_timeout} s "
                                                        f"time limit before {where}")]
            return cell, self.resources
        limit = self._get_timeout(cell)
        self._output_bytes = 0
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
            self._timed_out = True
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

