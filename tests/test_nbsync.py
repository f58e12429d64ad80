"""`make sync` (tools/nbsync.py) never drops an edit: one changed half is copied to the
other (outputs kept), and when both halves changed it refuses, names the cells, and
writes nothing until a side is chosen.

The tool is called in this process (``nbsync.main``, what ``python tools/nbsync.py``
runs, with its jupytext commands run in this process too); one test runs it as a
program."""

import contextlib
import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jupytext.cli import jupytext

TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(TOOLS))
import nbsync  # noqa: E402

CHAPTER = "03_masks"
TOOL = TOOLS / "nbsync.py"


def jupytext_in_process(*args: str) -> None:
    """nbsync's `python -m jupytext --quiet ARGS` (check=True), in this process."""
    code = jupytext(["--quiet", *args])
    if code:
        raise subprocess.CalledProcessError(code, ["jupytext", *args])


def run_sync(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`python tools/nbsync.py --root ROOT ARGS` run in ROOT, in this process."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setattr(nbsync, "jupytext_cli", jupytext_in_process)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = nbsync.main(["--root", str(root), *args])
    return subprocess.CompletedProcess(
        args, code, out.getvalue(), err.getvalue()
    )


def run_sync_program(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), "--root", str(root), *args],
        cwd=root,
        capture_output=True,
        text=True,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def copy(root: Path, tmp_path: Path) -> Path:
    """One chapter's pair in a folder outside git, synced once (so a record exists)."""
    (tmp_path / "notebooks").mkdir()
    for suffix in (".ipynb", ".py"):
        shutil.copy(
            root / "notebooks" / f"{CHAPTER}{suffix}",
            tmp_path / "notebooks" / f"{CHAPTER}{suffix}",
        )
    result = run_sync(tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path


def edit_py(copy: Path, old: str, new: str) -> None:
    pair = copy / "notebooks" / f"{CHAPTER}.py"
    text = pair.read_text()
    assert old in text
    pair.write_text(text.replace(old, new, 1))


def edit_ipynb(copy: Path, old: str, new: str) -> None:
    notebook = copy / "notebooks" / f"{CHAPTER}.ipynb"
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if old in source:
            cell["source"] = source.replace(old, new, 1)
            break
    else:
        raise AssertionError(f"{old!r} is in no cell")
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def outputs(copy: Path) -> list:
    nb = json.loads((copy / "notebooks" / f"{CHAPTER}.ipynb").read_text())
    return [c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"]


def test_an_edit_in_the_py_reaches_the_notebook_and_keeps_outputs(copy):
    """Run as `make sync` runs it: a program (which runs jupytext's)."""
    before = outputs(copy)
    edit_py(copy, "# # 3. Masking", "# # 3. Masking, edited in the .py")
    result = run_sync_program(copy)
    assert result.returncode == 0, result.stderr
    text = (copy / "notebooks" / f"{CHAPTER}.ipynb").read_text()
    assert "Masking, edited in the .py" in text
    assert outputs(copy) == before  # no code changed: every output kept


def test_an_edit_in_the_notebook_reaches_the_py(copy):
    edit_ipynb(copy, "# 3. Masking", "# 3. Masking, edited in Jupyter")
    result = run_sync(copy)
    assert result.returncode == 0, result.stderr
    text = (copy / "notebooks" / f"{CHAPTER}.py").read_text()
    assert "# # 3. Masking, edited in Jupyter" in text


def test_both_halves_edited_is_refused_and_nothing_is_written(copy):
    edit_py(copy, "# # 3. Masking", "# # 3. Masking (py)")
    edit_ipynb(
        copy, "## Masking happens inside", "## Masking happens (nb) inside"
    )
    files = [copy / "notebooks" / f"{CHAPTER}{s}" for s in (".py", ".ipynb")]
    before = [digest(f) for f in files]
    result = run_sync(copy)
    assert result.returncode == 1
    assert "both changed since they last agreed; nothing was written" in (
        result.stderr
    )
    # both cells are named, each from the half that changed it
    assert "3. Masking (py)" in result.stderr
    assert "Masking happens (nb) inside" in result.stderr
    assert "PREFER=py" in result.stderr
    assert [digest(f) for f in files] == before

    # choosing a side resolves it: the .py wins, the notebook's edit is dropped
    result = run_sync(copy, "--prefer", "py")
    assert result.returncode == 0, result.stderr
    text = (copy / "notebooks" / f"{CHAPTER}.ipynb").read_text()
    assert "3. Masking (py)" in text
    assert "Masking happens (nb) inside" not in text
    assert run_sync(copy).returncode == 0  # and they agree from now on


def test_no_record_and_different_halves_is_a_conflict(copy):
    shutil.rmtree(copy / "notebooks" / ".sync")
    edit_py(copy, "# # 3. Masking", "# # 3. Masking (py)")
    result = run_sync(copy)  # outside git: nothing says which half is older
    assert result.returncode == 1
    assert "3. Masking (py)" in result.stderr
