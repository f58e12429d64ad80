"""The notebook test (nbval with tests/sanitize.cfg) really compares outputs: a tampered
stored output fails it, and the sanitizer only hides addresses and device names.

One nbval session (a process of its own, as `make test` runs it) checks three notebooks,
each in its own kernel; each test reads its notebook's results from the session's
JUnit report."""

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = Path("notebooks") / "01_dot_product.ipynb"


def run_nbval(folder: Path, notebooks: list[str], root: Path):
    """Run nbval on `notebooks` (paths relative to `folder`); the session and,
    per notebook, its cells as (name, failure text or None)."""
    report = folder / "report.xml"
    session = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(folder),
            "-o",
            "junit_family=xunit1",  # each case names its file
            f"--junitxml={report}",
            "--nbval",
            "--nbval-current-env",
            "--nbval-sanitize-with",
            str(root / "tests" / "sanitize.cfg"),
            *notebooks,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    cells: dict[str, list[tuple[str, str | None]]] = {
        n: [] for n in notebooks
    }
    if report.exists():
        for case in ElementTree.parse(report).iter("testcase"):
            failed = case.find("failure")
            if failed is None:
                failed = case.find("error")
            text = None
            if failed is not None:
                text = f"{failed.get('message', '')}\n{failed.text or ''}"
            cells.setdefault(case.get("file"), []).append(
                (case.get("name"), text)
            )
    return session, cells


def small_notebook(path: Path, printed: str) -> Path:
    # what torch prints, with no torch to import: the kernel starts faster
    code = (
        "import math\n"
        "print(round(0.1 + 0.2, 4))\n"
        "print(object.__repr__(math))  # a memory address, new on every run\n"
        'print("tensor([0.])")  # stored below as if it had run on a GPU'
    )
    cell = new_code_cell(code, execution_count=1)
    cell.outputs = [
        new_output(
            "stream",
            name="stdout",
            text=f"{printed}\n<module object at 0x7f00deadbeef>\ntensor([0.], device='cuda:0')\n",
        )
    ]
    nb = new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def tampered_chapter(root: Path, folder: Path) -> None:
    """Chapter 1 up to the cell that prints 'largest weight 0.596', that number
    changed to 0.597 in the stored output (the cells after it are left out)."""
    nb = json.loads((root / CHAPTER).read_text())
    printed = [
        (number, output)
        for number, cell in enumerate(nb["cells"])
        for output in cell.get("outputs", [])
        if output.get("name") == "stdout"
        and "largest weight 0.596" in "".join(output.get("text", []))
    ]
    assert printed, "chapter 1 no longer prints 'largest weight 0.596'"
    number, output = printed[0]
    text = "".join(output["text"])
    output["text"] = [
        text.replace("largest weight 0.596", "largest weight 0.597", 1)
    ]
    nb["cells"] = nb["cells"][: number + 1]
    copy = folder / CHAPTER
    copy.parent.mkdir()
    copy.write_text(json.dumps(nb))
    shutil.copy(root / "jupytext.toml", folder)


@pytest.fixture(scope="module")
def nbval(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nbval")
    small_notebook(folder / "ok.ipynb", "0.3")
    small_notebook(folder / "bad.ipynb", "0.4")
    tampered_chapter(ROOT, folder)
    return run_nbval(
        folder, ["ok.ipynb", "bad.ipynb", CHAPTER.as_posix()], ROOT
    )


def failures(nbval, notebook: str) -> list[str]:
    """The failure texts of a notebook's cells (it must have been run)."""
    session, cells = nbval
    assert cells.get(notebook), (
        f"nbval ran no cell of {notebook}:\n{session.stdout[-2000:]}"
    )
    # 1: some cells failed (bad.ipynb's, the chapter's), not an error of pytest
    assert session.returncode == 1, session.stdout[-2000:]
    return [text for _, text in cells[notebook] if text is not None]


def test_matching_outputs_pass(nbval):
    assert failures(nbval, "ok.ipynb") == []


def test_changed_number_fails(nbval):
    failed = failures(nbval, "bad.ipynb")
    assert len(failed) == 1, failed
    assert "0.4" in failed[0] and "0.3" in failed[0], failed[0]


def test_tampered_chapter_output_fails(nbval):
    """Change one printed number in chapter 1's stored outputs: the notebook test must fail."""
    failed = failures(nbval, CHAPTER.as_posix())
    assert any("0.597" in text for text in failed), failed
