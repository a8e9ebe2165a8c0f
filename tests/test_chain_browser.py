"""Lesson 09's upload button in a real JupyterLab: the browser sends a checkpoint, the kernel saves it
where lesson 09 loads it. Headless Chromium through Playwright, as in test_browser.py (skips without them).

A width-8 network keeps the file (1.7 MB) under the Jupyter server's 10 MiB message limit; larger files
are what the button's own text sends to the file browser instead.
"""

from __future__ import annotations

import functools

import nbformat
import pytest
import torch

from cnn_course import chain, cifar
from tests.jupyter_server import running_server
from tests.test_browser import ALL_RAN, CHROMIUM, CHROMIUM_FLAGS, KERNEL_IDLE, RUN_ALL, _require_browser

CELL = """import functools

from cnn_course import chain, cifar

box = chain.checkpoint_upload_widget(build_model=functools.partial(cifar.reference_model, width=8))
box"""


def choose(page, button, path) -> None:
    """Click the upload button and pick ``path`` in the browser's file dialog, as a learner does."""
    with page.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files(str(path))


@pytest.mark.browser
@pytest.mark.slow
def test_a_checkpoint_uploaded_in_jupyterlab_lands_beside_the_notebook(tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    lesson = tmp_path / "09_inside_the_cnn"
    lesson.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL, id="upload")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lesson / "upload.ipynb")
    torch.manual_seed(0)
    small = functools.partial(cifar.reference_model, width=8)
    sent = tmp_path / "from_my_laptop" / "cifar10_model.pt"
    sent.parent.mkdir()
    torch.save(small().state_dict(), sent)
    broken = tmp_path / "from_my_laptop" / "notes.pt"
    broken.write_bytes(b"not a checkpoint")

    extra = ["--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--ServerApp.jpserver_extensions=jupyterlab_jupytext=False"]
    with running_server(["lab"], cwd=tmp_path, extra_args=extra) as server:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 800})
                page.set_default_timeout(120_000)
                page.goto(server.url("/lab/tree/09_inside_the_cnn/upload.ipynb"))
                page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
                page.wait_for_function(KERNEL_IDLE)
                page.evaluate(RUN_ALL)
                page.wait_for_function(ALL_RAN, polling=500)
                button = page.locator(".jp-OutputArea-output .widget-upload")
                button.wait_for()
                status = page.locator(".jp-OutputArea-output .widget-html").first

                choose(page, button, broken)
                page.wait_for_function("el => el.innerText.includes('Nothing was saved')",
                                       arg=status.element_handle(), timeout=60_000)
                refused = status.inner_text()
                assert not (lesson / chain.CHECKPOINT).exists()

                choose(page, button, sent)
                page.wait_for_function("el => el.innerText.includes('saved cifar10_model.pt')",
                                       arg=status.element_handle(), timeout=60_000)
                accepted = status.inner_text()
            finally:
                browser.close()
    assert "is not a PyTorch checkpoint" in refused
    assert "Now run the model cell" in accepted
    assert (lesson / chain.CHECKPOINT).read_bytes() == sent.read_bytes()
