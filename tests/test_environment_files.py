"""Binder's environment.yml, requirements.txt and pyproject.toml ask for the same packages.

- requirements.txt: what a learner installs locally (``pip install -r requirements.txt``);
- environment.yml: what repo2docker (Binder) installs, from conda-forge, with a ``pip:``
  section for what must come from PyPI (e.g. CPU builds of torch);
- postBuild: what repo2docker runs afterwards; it installs this repository's package
  (requirements.txt's ``-e .``), which environment.yml cannot: repo2docker installs
  environment.yml before it copies the repository in.

Every package must appear in both files with the same version specifier (conda names
are mapped to PyPI names, e.g. ``pytorch`` -> ``torch``); every dependency of the
package in pyproject.toml must appear in requirements.txt with the same specifier.
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONDA_TO_PYPI = {"pytorch": "torch", "pytorch-cpu": "torch", "matplotlib-base": "matplotlib"}
NOT_PACKAGES = {"python", "pip"}  # the interpreter and the installer, not requirements
LOCAL = {"-e .", "-e ./", "."}


def _strip(line: str) -> str:
    return line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""


def parse_requirements(text: str) -> tuple[dict[str, SpecifierSet], bool]:
    """name -> specifier of a requirements file, and whether it installs this repository (``-e .``)."""
    found, local = {}, False
    for raw in text.splitlines():
        line = _strip(raw)
        if not line:
            continue
        if line in LOCAL:
            local = True
            continue
        if line.startswith("-"):
            continue  # pip options such as --extra-index-url
        req = Requirement(line)
        found[canonicalize_name(req.name)] = req.specifier
    return found, local


def parse_conda_spec(spec: str) -> tuple[str, SpecifierSet]:
    """'numpy>=1.24' or 'numpy >=1.24' or 'python=3.11' -> (name, specifier); conda's '=1.2' means '==1.2.*'."""
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec.split("::")[-1])
    name, version = match.group(1), match.group(2).replace(" ", "")
    if re.fullmatch(r"=[^=<>!,]+", version):
        version = f"=={version[1:]}.*" if not version.endswith("*") else f"=={version[1:]}"
    return canonicalize_name(CONDA_TO_PYPI.get(name, name)), SpecifierSet(version)


def parse_environment(text: str) -> tuple[list[str], dict[str, SpecifierSet], dict[str, SpecifierSet], list[str]]:
    """channels, conda packages, pip packages and pip lines that install a local path."""
    env = yaml.safe_load(text)
    conda, pip, local = {}, {}, []
    for item in env.get("dependencies", []):
        if isinstance(item, dict):
            for line in item.get("pip", []):
                line = line.strip()
                if line in LOCAL or line.startswith(("-e", ".", "/")):
                    local.append(line)
                elif not line.startswith("-"):
                    req = Requirement(line)
                    pip[canonicalize_name(req.name)] = req.specifier
        else:
            name, spec = parse_conda_spec(str(item))
            conda[name] = spec
    return list(env.get("channels", [])), conda, pip, local


def agreement_problems(requirements: str, environment: str) -> list[str]:
    """Everything that keeps the two files from asking for the same packages ([] when they agree)."""
    problems = []
    wanted, _ = parse_requirements(requirements)
    channels, conda, pip, local = parse_environment(environment)
    if not channels or channels[0] != "conda-forge":
        problems.append(f"environment.yml: conda-forge must be the first channel (channels: {channels})")
    if "defaults" in channels:
        problems.append("environment.yml: the 'defaults' channel needs a licence for many users; use conda-forge only")
    if local:
        problems.append(f"environment.yml: {local} installs the repository, which repo2docker has not copied yet; "
                        "postBuild does that")
    for name in sorted(set(conda) & set(pip)):
        problems.append(f"environment.yml: {name} is both a conda and a pip dependency")
    got = {k: v for k, v in {**conda, **pip}.items() if k not in NOT_PACKAGES}
    for name in sorted(set(wanted) - set(got)):
        problems.append(f"{name}{wanted[name]} is in requirements.txt but not in environment.yml")
    for name in sorted(set(got) - set(wanted)):
        problems.append(f"{name}{got[name]} is in environment.yml but not in requirements.txt")
    for name in sorted(set(wanted) & set(got)):
        if wanted[name] != got[name]:
            problems.append(f"{name}: requirements.txt asks for '{wanted[name]}', environment.yml for '{got[name]}'")
    return problems


def _read(name: str) -> str:
    path = ROOT / name
    if not path.is_file():
        pytest.fail(f"{name} is missing: Binder needs it (GOOD_ENV at the end of this file shows the form)")
    return path.read_text(encoding="utf-8")


def test_environment_yml_and_requirements_txt_agree():
    problems = agreement_problems(_read("requirements.txt"), _read("environment.yml"))
    assert not problems, "\n".join(problems)


def test_postbuild_installs_the_repository_and_requirements_do_too():
    _, local = parse_requirements(_read("requirements.txt"))
    assert local, "requirements.txt should install the course's package with '-e .'"
    postbuild = ROOT / "postBuild"
    assert postbuild.is_file() and os.access(postbuild, os.X_OK), "postBuild must exist and be executable"
    lines = [_strip(x) for x in postbuild.read_text().splitlines()]
    assert lines[0].startswith("#!") or postbuild.read_text().startswith("#!"), "postBuild needs a shebang line"
    assert any(re.search(r"pip install .*(-e \.|\s\.)$", x) for x in lines), "postBuild must pip-install the repository"
    assert not (ROOT / "binder").exists(), "a binder/ folder makes repo2docker ignore environment.yml and postBuild"


def test_pyproject_dependencies_are_in_requirements():
    deps = tomllib.loads(_read("pyproject.toml"))["project"]["dependencies"]
    wanted, _ = parse_requirements(_read("requirements.txt"))
    for dep in map(Requirement, deps):
        name = canonicalize_name(dep.name)
        assert name in wanted, f"pyproject.toml needs {dep} but requirements.txt does not list {dep.name}"
        assert wanted[name] == dep.specifier, f"{dep.name}: pyproject '{dep.specifier}', requirements '{wanted[name]}'"


# The checker itself, on small examples.

GOOD_ENV = """
name: cnn-course
channels: [conda-forge]
dependencies:
  - python=3.11
  - pip
  - numpy>=1.24
  - nbgrader >=0.9.6,<0.10
  - pip:
      - --extra-index-url https://download.pytorch.org/whl/cpu
      - torch>=2.1
"""
GOOD_REQ = "numpy>=1.24  # arrays\nnbgrader>=0.9.6,<0.10\ntorch>=2.1\n-e .\n"


def test_checker_accepts_agreeing_files():
    assert agreement_problems(GOOD_REQ, GOOD_ENV) == []
    assert parse_conda_spec("python=3.11") == ("python", SpecifierSet("==3.11.*"))
    assert parse_conda_spec("pytorch>=2.1") == ("torch", SpecifierSet(">=2.1"))


@pytest.mark.parametrize("req, env, complaint", [
    (GOOD_REQ + "tqdm>=4.60\n", GOOD_ENV, "tqdm>=4.60 is in requirements.txt but not in environment.yml"),
    (GOOD_REQ.replace("numpy>=1.24", "numpy>=2"), GOOD_ENV, "numpy: requirements.txt asks for '>=2'"),
    (GOOD_REQ, GOOD_ENV + "      - rich\n", "rich is in environment.yml but not in requirements.txt"),
    (GOOD_REQ, GOOD_ENV.replace("[conda-forge]", "[defaults, conda-forge]"), "conda-forge must be the first channel"),
    (GOOD_REQ, GOOD_ENV + "      - -e .\n", "postBuild does that"),
    (GOOD_REQ, GOOD_ENV + "  - torch>=2.1\n", "both a conda and a pip dependency"),
])
def test_checker_names_each_disagreement(req, env, complaint):
    assert any(complaint in p for p in agreement_problems(req, env)), agreement_problems(req, env)
