"""The course book (tools/build_book.py): every lesson readable with its figures, and no solution in it.

The slow tests build the book with the README's command into artifacts/book (git-ignored;
the executed instructor notebooks are cached in artifacts/instructor_run, so a rebuild after a text edit takes
seconds), once per test session even with several pytest workers (a lock, and a stamp of
the inputs). Then:

* the leak test searches every file of the site for every solution region and hidden-test
  block of ``solutions/`` (``tools/book_leaks.py`` says what "absent" means: every
  non-trivial line of a region that the released notebooks do not show anyway, and the
  region as a whole, in the text, attributes, JSON strings and ``data:`` URIs of every
  file), and checks that the search finds planted leaks of each kind, so that it can fail;
* each page shows the learner's stub of every exercise, the instructor's figures, no test
  output and, for lesson 08, that its figures come from a short run;
* in Chromium (Debian's, driven by Playwright, as in test_browser.py), served from
  127.0.0.1 with every other host blocked, the index lists the lessons and a lesson page
  loads all its figures, typesets its math, holds no secret in its rendered DOM and fits a
  phone's width; screenshots go to artifacts/browser/book_*.png.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import html
import http.server
import json
import os
import pathlib
import re
import subprocess
import sys
import threading

import nbformat
import pytest

from autograder.config import lesson_ids
from tests.test_browser import CHROMIUM, _require_browser

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import book_leaks  # noqa: E402
import build_book  # noqa: E402

OUT = ROOT / "artifacts" / "book"
SITE = OUT / "html"
SHOTS = ROOT / "artifacts" / "browser"
BROWSER_LESSON = "03_padding_and_stride"  # math, figures and a widget snapshot
BUILD_TIMEOUT_S = 1500


def _inputs_key() -> str:
    digest = hashlib.sha256(build_book.mode().encode())
    for folder in ("lessons", "solutions", "cnn_course", "book"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and ".ipynb_checkpoints" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    for path in (ROOT / "tools" / "build_book.py", ROOT / "tools" / "book_leaks.py"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def site() -> pathlib.Path:
    """The built book (built here unless an up-to-date build is already there)."""
    from filelock import FileLock

    OUT.mkdir(parents=True, exist_ok=True)
    stamp, key = OUT / "built-from.txt", _inputs_key()
    with FileLock(str(OUT / "build.lock"), timeout=BUILD_TIMEOUT_S):
        if not (stamp.is_file() and stamp.read_text() == key and (SITE / "index.html").is_file()):
            stamp.unlink(missing_ok=True)
            env = {**os.environ, "CNN_COURSE_MODE": build_book.mode()}
            done = subprocess.run([sys.executable, "tools/build_book.py"], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=BUILD_TIMEOUT_S)
            (OUT / "build.log").write_text(done.stdout + done.stderr, encoding="utf-8")
            assert done.returncode == 0, f"the book did not build:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            print(done.stdout.splitlines()[-1])  # "== built ... in N s, M MiB" (pytest -s, or artifacts/book/build.log)
            stamp.write_text(key)
    return SITE


@functools.cache
def all_secrets() -> list[book_leaks.Secret]:
    return book_leaks.secrets(ROOT)


def page(lesson: str) -> pathlib.Path:
    return SITE / lesson / f"{lesson}.html"


def page_text(path: pathlib.Path) -> str:
    parser = book_leaks._Page()
    parser.feed(path.read_text(encoding="utf-8"))
    return book_leaks.normalize("".join(parser.text))


# ---------------------------------------------------------------- the leak search itself (no build needed)

def test_every_lesson_has_secrets_to_search_for():
    """An empty list would make the leak test pass vacuously."""
    found = all_secrets()
    for lesson in lesson_ids(ROOT):
        if lesson == "00_start_here":
            continue
        kinds = {s.kind for s in found if s.lesson == lesson}
        assert kinds == {"solution", "hidden tests"}, f"{lesson}: secrets of kinds {kinds}"
    texts = {s.text for s in found}
    assert "return out" not in texts and "continue" not in texts  # trivial lines are not secrets


def _planted_pages(secret: str) -> dict[str, str]:
    """One small page per way a secret could hide in a site."""
    code = "".join(f'<span class="n">{html.escape(ch)}</span>' for ch in secret)  # highlighted: a span per token
    blob = base64.b64encode(f"<pre>{secret}</pre>".encode()).decode()
    widget_state = json.dumps({"state": {"outputs": [{"text": "x = 1\n" + secret + "\n"}]}})
    return {
        "highlighted code": f"<html><body><pre>{code}</pre></body></html>",
        "an attribute": f'<html><body><img alt="{html.escape(secret, quote=True)}" src="x.png"></body></html>',
        "a data URI": f'<html><body><iframe src="data:text/html;base64,{blob}"></iframe></body></html>',
        "widget state JSON": f'<html><body><script type="application/json">{widget_state}</script></body></html>',
        "an escaped JS string": f"<html><body><script>var s = {json.dumps(secret + chr(10))};</script></body></html>",
        "a notebook": json.dumps({"cells": [{"source": ["a\n", secret + "\n"]}]}),
    }


@pytest.mark.parametrize("kind", ["solution", "hidden tests"])
def test_leak_search_finds_planted_leaks(kind, tmp_path):
    # a line with quotes, which HTML, JSON and JavaScript each escape their own way
    secret = next(s for s in all_secrets() if s.kind == kind and '"' in s.text and len(s.text) > 20)
    for where, text in _planted_pages(secret.text).items():
        folder = tmp_path / where.replace(" ", "_")
        folder.mkdir()
        (folder / ("page.ipynb" if where == "a notebook" else "page.html")).write_text(text, encoding="utf-8")
        leaks = book_leaks.find_leaks(folder, all_secrets())
        assert leaks and secret.text[:60] in "\n".join(leaks), f"a {kind} line planted in {where} was not found"
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "page.html").write_text("<html><body><pre>def conv2d(x, w):\n    return out\n</pre></body></html>")
    assert book_leaks.find_leaks(clean, all_secrets()) == []


def test_book_outputs_drop_errors_and_snapshot_widgets():
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_slider", "IPY_MODEL_out"]}},
        "slider": {"model_name": "IntSliderModel", "state": {"description": "stride", "value": 2}},
        "out": {"model_name": "OutputModel", "state": {"outputs": [
            {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
             "metadata": {}}]}},
    }
    cell = nbformat.v4.new_code_cell("explorer()", outputs=[
        nbformat.v4.new_output("error", ename="ValueError", evalue="no", traceback=["  return secret_line"]),
        nbformat.v4.new_output("display_data", data={build_book.WIDGET_VIEW: {"model_id": "box"}, "text/plain": "VBox()"}),
    ])
    outputs = build_book.book_outputs(cell, state)
    assert [o.output_type for o in outputs] == ["stream", "display_data"]
    assert "stride: 2" in outputs[0].text and "image/png" in outputs[1].data
    assert not any(build_book.WIDGET_VIEW in o.get("data", {}) for o in outputs)


# ---------------------------------------------------------------- the built book

@pytest.mark.slow
def test_book_leaks_no_solution_and_no_hidden_test(site):
    """Absent means: no secret of tools/book_leaks.py (each non-trivial line of every solution region and
    hidden-test block that the released notebooks do not show anyway, and each region as a whole, all
    whitespace-normalised) is a substring of any view of any file the book's content made (text, attributes,
    JSON strings, decoded escapes and data: URIs); and no nbgrader marker appears."""
    leaks = book_leaks.find_leaks(site, all_secrets())
    assert not leaks, "the book shows solution or hidden-test text:\n" + "\n".join(leaks[:30])
    for path in book_leaks.content_files(site):
        text = path.read_bytes().decode("utf-8", errors="ignore")
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{path.relative_to(site)} shows the nbgrader marker {marker!r}"


@pytest.mark.slow
def test_book_has_every_lesson_with_stubs_figures_and_no_test_output(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    for lesson in lesson_ids(ROOT):
        assert page(lesson).is_file(), f"no page for {lesson}"
        assert f'href="{lesson}/{lesson}.html"' in index, f"the index does not link {lesson}"
        released = nbformat.read(ROOT / "lessons" / lesson / f"{lesson}.ipynb", as_version=4)
        assembled = nbformat.read(OUT / "src" / lesson / f"{lesson}.ipynb", as_version=4)
        text = page_text(page(lesson))
        for cell in released.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution"):
                assert book_leaks.normalize(cell.source) in text, f"{lesson}: the stub of {meta['grade_id']} is missing"
        for cell in assembled.cells:
            if cell.cell_type == "code" and (cell.metadata.get("nbgrader", {}).get("grade")
                                             or cell.metadata.get("nbgrader", {}).get("solution")):
                assert not cell.outputs, f"{lesson}: {cell.metadata['nbgrader']['grade_id']} shows an output"
            assert not any(o.output_type == "error" for o in cell.get("outputs", []))
        figures = sum(1 for c in assembled.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}))
        executed = nbformat.read(build_book.DEFAULT_CACHE / f"{lesson}.ipynb", as_version=4)
        ran_figures = sum(1 for c in executed.cells if c.cell_type == "code" and not build_book.is_test_cell(c)
                          and not build_book.is_solution_cell(c) for o in c.outputs if "image/png" in o.get("data", {}))
        assert figures >= ran_figures, f"{lesson}: {ran_figures} figures in the instructor's demo cells, {figures} in the book"
        images = re.findall(r'<img[^>]+src="(\.\./_images/[^"]+)"', page(lesson).read_text(encoding="utf-8"))
        assert len(images) >= figures, f"{lesson}: {figures} figures, {len(images)} images on the page"
        assert all((page(lesson).parent / src).resolve().is_file() for src in images)
    assert sum(1 for _ in (site / "_images").glob("*.png")) >= 20
    assert "come from a short run" in page_text(page("08_cifar10_on_gpu")) or build_book.mode() != "smoke"


# ---------------------------------------------------------------- in a browser

@contextlib.contextmanager
def serving(folder: pathlib.Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


FIGURES = """() => Array.from(document.images).filter(i => i.src.startsWith(location.origin))
                 .map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0}))"""
DOM_TEXT = """() => {
  const parts = [document.documentElement.innerText];
  for (const el of document.querySelectorAll('*')) for (const a of el.attributes) parts.push(a.value);
  return parts.join('\\n');
}"""


@pytest.mark.browser
@pytest.mark.slow
def test_book_in_chromium(site):
    _require_browser()
    from playwright.sync_api import sync_playwright

    from tests.test_browser import CHROMIUM_FLAGS

    SHOTS.mkdir(parents=True, exist_ok=True)
    secret_texts = [s.text for s in all_secrets()]
    with serving(site) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1300, "height": 1000})
            blocked: list[str] = []
            # The book must work from its own files: every other host is out of reach (badges just show their alt text).
            context.route(re.compile(r"^(?!http://127\.0\.0\.1:).*"),
                          lambda route: (blocked.append(route.request.url), route.abort()))
            view = context.new_page()
            view.set_default_timeout(60_000)

            view.goto(f"{base}/index.html")
            view.wait_for_load_state("networkidle")
            rows = view.locator("table tbody tr")
            assert rows.count() == len(lesson_ids(ROOT)), "the index does not list every lesson"
            assert "Colab" in rows.first.inner_text() and "Binder" in rows.first.inner_text()
            view.screenshot(path=str(SHOTS / "book_index.png"), full_page=False)

            view.locator(f'table a[href="{BROWSER_LESSON}/{BROWSER_LESSON}.html"]').click()
            view.wait_for_url(f"**/{BROWSER_LESSON}/{BROWSER_LESSON}.html")
            view.wait_for_load_state("networkidle")
            view.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0"
                                   " && document.querySelectorAll('.MathJax, .MathJax_Display').length > 0")
            figures = view.evaluate(FIGURES)
            figure_srcs = [f["src"] for f in figures if "/_images/" in f["src"]]
            broken = [f["src"] for f in figures if not f["ok"]]
            math_errors = view.locator(".MathJax_Error, merror").count()
            dom = book_leaks.normalize(view.evaluate(DOM_TEXT))
            snapshot = view.get_by_text("a snapshot of an interactive widget").count()
            view.locator("img[src*='_images/']").nth(min(3, len(figure_srcs) - 1)).scroll_into_view_if_needed()
            view.screenshot(path=str(SHOTS / f"book_{BROWSER_LESSON}.png"), full_page=False)
            view.set_viewport_size({"width": 390, "height": 844})  # a phone
            view.locator("img[src*='_images/']").first.scroll_into_view_if_needed()
            phone_overflow = view.evaluate("() => document.documentElement.scrollWidth > window.innerWidth + 1")
            view.screenshot(path=str(SHOTS / f"book_{BROWSER_LESSON}_phone.png"), full_page=False)
        finally:
            browser.close()
    assert len(figure_srcs) >= 5, f"only {len(figure_srcs)} figures on the page"
    assert not broken, f"figures that did not load: {broken}"
    assert math_errors == 0, "MathJax reported errors"
    assert snapshot > 0, "the explorer's snapshot is missing"
    assert not phone_overflow, "on a phone-sized screen the page scrolls sideways"
    leaked = [s for s in secret_texts if s in dom]
    assert not leaked, f"the rendered page shows solution or hidden-test text: {leaked[:5]}"
    assert all(not u.startswith(("http://127.0.0.1", "file:")) for u in blocked)
    for name in ("book_index.png", f"book_{BROWSER_LESSON}.png", f"book_{BROWSER_LESSON}_phone.png"):
        assert (SHOTS / name).stat().st_size > 20_000, f"{name} looks empty"
