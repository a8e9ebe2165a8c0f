# nbgrader reads this file when run from the repository root (nbgrader CLI, formgrader).
# The settings themselves live in autograder/config.py, shared with `python -m autograder`.
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from autograder.config import course_config, ensure_tools_on_path  # noqa: E402

ensure_tools_on_path()  # nbgrader runs `alembic` by name, also when the venv is not activated
c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)
c.merge(course_config(pathlib.Path(__file__).resolve().parent))
