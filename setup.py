"""Packaging is declared in pyproject.toml; this adds the one thing TOML cannot say there
without listing every subpackage by hand: the web page's folder, static/ at the top of the
repository, ships inside the package as `app.static` (so `pip install .` serves the page).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["app", "app.*"]), "app.static"],
    package_dir={"app.static": "static"},
)
