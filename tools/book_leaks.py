"""Find solution text and hidden tests of ``solutions/`` in a built site (the course book).

What counts as secret: the text of every solution region (between ``### BEGIN SOLUTION``
and ``### END SOLUTION``, or a whole solution cell that has no markers) and of every
hidden-test block (``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``) of every
instructor notebook. Some of their lines are public anyway (``return out``, an import,
a line the released notebook also shows), so a region is tested line by line:

* every line of a region, whitespace-normalised (runs of whitespace become one space,
  ends stripped), is a secret unless it is trivial (under ``MIN_CHARS`` characters, no
  letter or digit, or a single bare word such as ``continue``) or public: a substring of
  the released notebooks' text (``lessons/``, each cell normalised the same way), which
  a learner sees anyway (``nn.Flatten(),`` inside a longer line of a demo, ``model.eval()``);
* so is the normalised region as a whole, unless trivial or public (it catches a region
  whose lines are all short or public but whose combination is not).

A secret is present in the site when it is a substring of any normalised *view* of any
file: the raw text, the same with HTML entities and JSON/JavaScript escapes decoded, the
text content of an HTML page (so that syntax-highlighting spans do not hide code), every
attribute value of every element (``alt``, ``title``, ``data-*``, ``href``...), every
string inside JSON (``.ipynb``, ``.json``, JSON in ``<script>`` tags such as widget state)
and the decoded payload of every ``data:`` URI. Files that Sphinx and the theme copy
verbatim from their own packages (fonts, the theme's scripts and stylesheets, MathJax) are skipped:
they come from no notebook.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import html
import json
import pathlib
import re
import sys
import urllib.parse
from html.parser import HTMLParser

import nbformat

MIN_CHARS = 8
MARKERS = {
    "solution": ("### BEGIN SOLUTION", "### END SOLUTION"),
    "hidden tests": ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
}


def normalize(text: str) -> str:
    return " ".join(text.split())


def trivial(line: str) -> bool:
    """Too short or too common to tell anything: under MIN_CHARS, no letter or digit, or one bare word (``continue``)."""
    return len(line) < MIN_CHARS or not re.search(r"\w", line) or re.fullmatch(r"\w+:?", line) is not None


@dataclasses.dataclass(frozen=True)
class Secret:
    lesson: str
    kind: str
    cell: str
    text: str  # normalised

    def describe(self) -> str:
        return f"{self.lesson} {self.kind} of {self.cell}: {self.text[:100]!r}"


def regions(source: str, kind: str) -> list[str]:
    begin, end = MARKERS[kind]
    found, inside, lines = [], False, []
    for line in source.splitlines():
        if line.strip().startswith(begin):
            inside, lines = True, []
        elif line.strip().startswith(end) and inside:
            inside = False
            found.append("\n".join(lines))
        elif inside:
            lines.append(line)
    if inside:
        found.append("\n".join(lines))
    return found


def cell_regions(cell) -> list[tuple[str, str]]:
    """(kind, text) of every secret region of an instructor cell."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    out = [("solution", r) for r in regions(cell.source, "solution")]
    if meta.get("solution") and not out and cell.source.strip():
        out.append(("solution", cell.source))  # nbgrader replaces a marker-less solution cell whole
    out += [("hidden tests", r) for r in regions(cell.source, "hidden tests")]
    return out


def public_text(root: pathlib.Path) -> str:
    """The text of every released notebook, each cell normalised, one cell a line."""
    return "\n".join(normalize(cell.source) for path in sorted((root / "lessons").glob("*/*.ipynb"))
                     for cell in nbformat.read(path, as_version=4).cells)


def secrets(root: pathlib.Path, lessons: list[str] | None = None) -> list[Secret]:
    public = public_text(root)
    found: dict[str, Secret] = {}
    for path in sorted((root / "solutions").glob("*/*.ipynb")):
        lesson = path.parent.name
        if lessons is not None and lesson not in lessons:
            continue
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell {index}"
            for kind, text in cell_regions(cell):
                whole = normalize(text)
                candidates = [normalize(line) for line in text.splitlines()] + [whole]
                for candidate in (c for c in candidates if not trivial(c) and c not in public):
                    found.setdefault(candidate, Secret(lesson, kind, name, candidate))
    return list(found.values())


# ---------------------------------------------------------------- views of a file

class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.attributes: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        self.attributes.extend(value for _, value in attrs if value)

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_script:
            self.scripts.append(data)


def _json_strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_json_strings(k), *_json_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _json_strings(v)]
    return []


ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[\"'\\/nrtbf])")
SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
DATA_URI = re.compile(r"data:([\w.+/-]*)((?:;[\w.+-]+=[\w.+-]+)*)(;base64)?,([A-Za-z0-9+/=%._~!$&'()*:@-]+)")


def unescape_js(text: str) -> str:
    def one(match):
        code = match.group(1)
        if code[0] in "ux":
            return chr(int(code[1:], 16))
        return SIMPLE.get(code, code)
    return ESCAPE.sub(one, text)


def _data_uris(text: str) -> list[str]:
    decoded = []
    for match in DATA_URI.finditer(text):
        payload = match.group(4)
        try:
            raw = base64.b64decode(payload + "=" * (-len(payload) % 4)) if match.group(3) \
                else urllib.parse.unquote_to_bytes(payload)
        except (binascii.Error, ValueError):
            continue
        decoded.append(raw.decode("utf-8", errors="ignore"))
    return decoded


def views(path: pathlib.Path) -> list[str]:
    raw = path.read_bytes().decode("utf-8", errors="ignore")
    texts = [raw, html.unescape(raw), unescape_js(raw), unescape_js(html.unescape(raw))]
    if path.suffix in (".html", ".htm", ".xhtml", ".svg", ".xml"):
        page = _Page()
        page.feed(raw)
        texts.append("".join(page.text))
        texts.extend(page.attributes)
        for script in page.scripts:
            try:
                texts.extend(_json_strings(json.loads(script)))
            except ValueError:
                pass
    if path.suffix in (".ipynb", ".json"):
        try:
            texts.extend(_json_strings(json.loads(raw)))
        except ValueError:
            pass
    for text in list(texts):
        for payload in _data_uris(text):
            texts.append(payload)
            texts.extend(_data_uris(html.unescape(payload)))
    return [normalize(t) for t in texts if t]


@functools.cache
def packaged_files() -> frozenset[str]:
    """sha256 of every static file shipped by Sphinx, its themes and extensions (copied verbatim into a site)."""
    import importlib.util

    digests = set()
    for name in ("sphinx", "sphinx_book_theme", "pydata_sphinx_theme", "myst_nb", "myst_parser", "jupyter_server_mathjax"):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            for path in pathlib.Path(location).rglob("*"):
                if path.is_file() and path.suffix not in (".py", ".pyc"):
                    digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    return frozenset(digests)


def content_files(site: pathlib.Path) -> list[pathlib.Path]:
    packaged = packaged_files()
    return [p for p in sorted(site.rglob("*"))
            if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() not in packaged]


def find_leaks(site: pathlib.Path, secret_list: list[Secret]) -> list[str]:
    """One line per (file, secret) found; empty when the site holds none."""
    leaks = []
    for path in content_files(site):
        file_views = views(path)
        for secret in secret_list:
            if any(secret.text in view for view in file_views):
                leaks.append(f"{path.relative_to(site)}: {secret.describe()}")
    return leaks


if __name__ == "__main__":
    root = pathlib.Path(__file__).resolve().parent.parent
    site_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else root / "artifacts" / "book" / "html")
    found_leaks = find_leaks(site_dir, secrets(root))
    print("\n".join(found_leaks) or f"no solution or hidden-test text in {site_dir}")
    sys.exit(1 if found_leaks else 0)
