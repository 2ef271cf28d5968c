"""A plain (non-editable) `pip install .` finds its templates, seed article, demo audience and
migrations from any working folder: build the wheel, install it into a fresh virtualenv that
borrows the dependencies, and run the demo from an unrelated folder.

The dependencies are borrowed from the interpreter running the tests, whatever it is: the system
Python, or a virtualenv as the README has a newcomer make (`--system-site-packages` would borrow
the *base* interpreter's packages, which a virtualenv's are not, so typer would be missing)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    (path,) = out.glob("newsletter-*.whl")
    return path


def test_wheel_carries_the_product_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "newsletter/_bundled/templates/newsletter.mjml.j2",
        "newsletter/_bundled/templates/newsletter.txt.j2",
        "newsletter/_bundled/articles/000-ketamine-assisted-psychotherapy.txt",
        "newsletter/_bundled/audiences/demo.csv",
        "newsletter/db/migrations/env.py",
        "newsletter/db/migrations/versions/0001_initial_schema.py",
        "newsletter/web/templates/base.html",
        "newsletter/tracking/data/machine_agents.txt",
    ):
        assert required in names, required
    assert not any(name.startswith("tests/") for name in names)


def running_site_packages() -> list[str]:
    """The site-packages folders of the interpreter running the tests (a venv's own, or the
    system's and the user's), where the dependencies were installed."""
    folders = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    return [folder for folder in folders if Path(folder).is_dir()]


def borrowing_venv(venv: Path) -> Path:
    """A fresh venv that sees the running interpreter's packages after its own: a ``.pth`` file
    of plain folder lines (the folders' own ``.pth`` files, such as the editable install's path
    to this checkout, are not run, so the wheel's copy is the only ``newsletter``). Its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    (own,) = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True, text=True, check=True
    ).stdout.split()
    (Path(own) / "borrowed-dependencies.pth").write_text("".join(f"{folder}\n" for folder in running_site_packages()))
    return python


def test_installed_command_runs_the_demo_from_any_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    python = borrowing_venv(venv)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)], check=True
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "SENDGRID_", "PYTHON"))}
    located = subprocess.run(
        [
            str(python),
            "-c",
            "import newsletter, newsletter.resources as r; print(newsletter.__file__, r.templates_dir())",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in located and str(REPO) not in located
    result = subprocess.run(
        [str(venv / "bin" / "newsletter"), "demo", "--no-serve"],
        check=False,
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((elsewhere / "newsletter-demo" / "outbox").glob("campaign-1/*.eml"))) >= 250
