# nbgrader reads this file when run from the repository root (nbgrader CLI, formgrader).
# The settings themselves live in autograder/config.py, shared with `python -m autograder`.
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from autograder.config import course_config  # noqa: E402

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)
c.merge(course_config(pathlib.Path(__file__).resolve().parent))
