"""A learner's view: JupyterLab in a real browser runs a lesson, and its widgets and plots render.

We start JupyterLab headless on 127.0.0.1 (free port, random token) in a temporary copy
of a lesson's SOLUTION notebook, drive Debian's Chromium with Playwright, run all cells,
and check in the page that a widget rendered (the JupyterLab widget extension works), a
plot appeared and no cell shows an error. The notebook is then saved and its outputs
checked too. A screenshot goes to artifacts/browser/<lesson>.png (git-ignored).

Lesson 03 has an ipywidgets explorer; while it is missing, lesson 02 with a small
widget cell added stands in. Skips (with the reason) when Chromium or Playwright is
not installed: `apt-get install chromium` and `pip install playwright` (Playwright's own
browser download is not needed).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import time

import nbformat
import pytest

from tests.jupyter_server import running_server

ROOT = pathlib.Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = os.environ.get("CNN_COURSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
WIDGET_LESSON = "03_padding_and_stride"
FALLBACK_LESSON = "02_convolution"
FALLBACK_WIDGET_CELL = """import ipywidgets as widgets

widgets.IntSlider(value=3, min=1, max=7, description="kernel")"""
RUN_TIMEOUT_S = 420


def _has_explorer(nb) -> bool:
    return any(c.cell_type == "code" and "_explorer(" in c.source for c in nb.cells)


def prepare_lesson(tmp: pathlib.Path) -> tuple[str, pathlib.Path]:
    """Copy the lesson to run into ``tmp``; return its id and notebook path."""
    nb_path = ROOT / "solutions" / WIDGET_LESSON / f"{WIDGET_LESSON}.ipynb"
    lesson = WIDGET_LESSON if nb_path.is_file() and _has_explorer(nbformat.read(nb_path, as_version=4)) \
        else FALLBACK_LESSON
    shutil.copytree(ROOT / "solutions" / lesson, tmp / lesson, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    path = tmp / lesson / f"{lesson}.ipynb"
    if lesson == FALLBACK_LESSON:
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(FALLBACK_WIDGET_CELL, id="browser-test-widget"))
        nbformat.write(nb, path)
    return lesson, path


def _require_browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CNN_COURSE_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright is not installed (pip install playwright; its browser download is not needed)")


# JavaScript run in the page (JupyterLab exposes its application object with expose_app_in_browser).
KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel
            && w.sessionContext.kernelDisplayStatus === 'idle');
}"""
RUN_ALL = """async () => {
  await window.jupyterapp.commands.execute('notebook:run-all-cells');
  return true;
}"""
ALL_RAN = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  if (w.sessionContext.kernelDisplayStatus !== 'idle') return false;
  const cells = Array.from(w.content.model.cells).filter(c => c.type === 'code');
  const failed = cells.some(c => Array.from({length: c.outputs.length}, (_, i) => c.outputs.get(i).type).includes('error'));
  return failed || cells.every(c => c.executionCount !== null);  // "run all" stops at the first error
}"""
ERRORS = """() => {
  const cells = Array.from(window.jupyterapp.shell.currentWidget.content.model.cells);
  const found = [];
  cells.forEach((c, n) => { if (c.type !== 'code') return;
    for (let i = 0; i < c.outputs.length; i++) { const o = c.outputs.get(i).toJSON();
      if (o.output_type === 'error') found.push(`cell ${n}: ${o.ename}: ${o.evalue}`); } });
  return found;
}"""
SAVE = "async () => { await window.jupyterapp.commands.execute('docmanager:save'); return true; }"


@pytest.mark.browser
@pytest.mark.slow
def test_lesson_runs_in_jupyterlab_with_widgets_and_plots(tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    lesson, path = prepare_lesson(tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{lesson}.png"
    extra = ["--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--ServerApp.jpserver_extensions=jupyterlab_jupytext=False"]
    # what a learner has: matplotlib's inline backend (CI exports MPLBACKEND=Agg, which shows nothing)
    env = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    with running_server(["lab"], cwd=tmp_path, extra_args=extra, env=env) as server:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            page = None
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(180_000)
                page.goto(server.url(f"/lab/tree/{lesson}/{lesson}.ipynb"))
                page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
                page.wait_for_function(KERNEL_IDLE)
                page.evaluate(RUN_ALL)
                page.wait_for_function(ALL_RAN, timeout=RUN_TIMEOUT_S * 1000, polling=1000)
                cell_errors = page.evaluate(ERRORS)
                assert not cell_errors, "cells show errors:\n" + "\n".join(cell_errors)
                page.wait_for_selector(".jp-OutputArea-output .jupyter-widgets", state="attached")
                time.sleep(1)  # let the last outputs and widget views paint before looking
                widget_views = page.locator(".jp-OutputArea-output .jupyter-widgets").count()
                images = page.locator(".jp-OutputArea-output img").count()
                stderr = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
                tracebacks = [t for t in stderr.all_inner_texts() if "Traceback" in t]
                widget_failures = page.get_by_text("Error displaying widget").count()
                # the kernel answers the browser: move the first slider, and the widget's view changes
                area = page.locator(".jp-OutputArea-output:has(.widget-slider)").first
                before = area.inner_text()
                area.locator(".widget-slider .noUi-handle").first.focus()
                page.keyboard.press("ArrowRight")
                page.wait_for_function("([el, before]) => el.innerText !== before",
                                       arg=[area.element_handle(), before], timeout=60_000)
                moved = area.inner_text() != before
                page.evaluate(SAVE)
                no_news = page.get_by_role("button", name="No", exact=True)  # JupyterLab's news prompt
                if no_news.count():
                    no_news.first.click()
                page.locator(".jp-OutputArea-output .jupyter-widgets").first.scroll_into_view_if_needed()
                time.sleep(0.5)
            finally:
                try:  # also after a failure: the screenshot shows what went wrong
                    if page is not None:
                        page.screenshot(path=str(shot), full_page=True)
                except Exception:  # noqa: BLE001 - the page may be gone; the failure itself is reported
                    pass
                browser.close()
    assert shot.is_file() and shot.stat().st_size > 10_000, "no screenshot"
    assert widget_views > 0 and widget_failures == 0, "the widgets did not render (is jupyterlab_widgets installed?)"
    assert images > 0, "no plot appeared"
    assert moved, "moving a slider did not change the widget's view"
    assert not tracebacks, "cells show errors:\n" + "\n\n".join(tracebacks)
    saved = nbformat.read(path, as_version=4)
    errors = [f"cell {i}: {o.ename}: {o.evalue}" for i, c in enumerate(saved.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert not errors, "\n".join(errors)
    assert all(c.execution_count for c in saved.cells if c.cell_type == "code"), "some cells did not run"
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for c in saved.cells if c.cell_type == "code" for o in c.outputs)


def test_the_lesson_choice(tmp_path, monkeypatch):
    """Lesson 03 once it has an explorer; otherwise lesson 02 plus a widget cell (no browser needed)."""
    lesson, path = prepare_lesson(tmp_path / "a")
    nb = nbformat.read(path, as_version=4)
    assert any(c.cell_type == "code" and "_explorer(" in c.source for c in nb.cells) or \
        (lesson == FALLBACK_LESSON and nb.cells[-1].source == FALLBACK_WIDGET_CELL)
    monkeypatch.setitem(globals(), "WIDGET_LESSON", "99_not_there")
    lesson, path = prepare_lesson(tmp_path / "b")
    assert lesson == FALLBACK_LESSON
    assert nbformat.read(path, as_version=4).cells[-1].source == FALLBACK_WIDGET_CELL
