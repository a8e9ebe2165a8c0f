"""Release and grade the course with nbgrader: release -> collect -> grade -> report.

Each step is a plain function you can call alone:

- :func:`autograder.release.release` regenerates ``lessons/`` from ``solutions/``;
- :func:`autograder.collect.collect` finds and validates a class's submissions;
- :func:`autograder.grade.grade_all` runs nbgrader's autograde on the valid ones;
- :func:`autograder.report.write_report` writes ``grades.csv`` and feedback HTML.

``python -m autograder --help`` is the command line.
"""
