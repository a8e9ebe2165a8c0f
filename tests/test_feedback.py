"""The feedback page: the same page nbconvert makes, without its slow BeautifulSoup pass."""

import base64

import nbformat
from bs4 import BeautifulSoup
from nbconvert.exporters import HTMLExporter

from autograder.feedback import NO_ALT, FeedbackExporter

PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                                     "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()


def test_the_feedback_page_says_what_nbconvert_says_and_every_image_has_alt_text():
    cell = nbformat.v4.new_code_cell("plt.imshow(x)\nprint('<b>not markup</b>')", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="<b>not markup</b>\n"),
        nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"}),
        nbformat.v4.new_output("error", ename="AssertionError", evalue="values differ",
                               traceback=["AssertionError: values differ"])])
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("A picture: ![a grid of pixels](figures/grid.png) and <img src='x.png'>"), cell])
    ours, _ = FeedbackExporter(template_name="classic").from_notebook_node(nb)
    theirs, _ = HTMLExporter(template_name="classic").from_notebook_node(nb)

    def text(html):
        return " ".join(BeautifulSoup(html, "html.parser").get_text().split())

    assert text(ours) == text(theirs)
    images = BeautifulSoup(ours, "html.parser").find_all("img")
    assert len(images) == 3 and all(img.get("alt") for img in images)
    assert [img["alt"] for img in images].count(NO_ALT) == 2  # the grid keeps its own words
