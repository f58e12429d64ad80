"""The notebook test (nbval with tests/sanitize.cfg) really compares outputs: a tampered
stored output fails it, and the sanitizer only hides addresses and device names."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output


def run_nbval(notebook: Path, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--nbval",
            "--nbval-current-env",
            "--nbval-sanitize-with",
            str(root / "tests" / "sanitize.cfg"),
            str(notebook),
        ],
        cwd=notebook.parent,
        capture_output=True,
        text=True,
    )


def small_notebook(path: Path, printed: str) -> Path:
    code = (
        "import torch\n"
        "print(round(0.1 + 0.2, 4))\n"
        "print(object.__repr__(torch))  # a memory address, new on every run\n"
        "print(torch.zeros(1))  # stored below as if it had run on a GPU"
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


def test_matching_outputs_pass(root, tmp_path):
    result = run_nbval(small_notebook(tmp_path / "ok.ipynb", "0.3"), root)
    assert result.returncode == 0, result.stdout[-2000:]


def test_changed_number_fails(root, tmp_path):
    result = run_nbval(small_notebook(tmp_path / "bad.ipynb", "0.4"), root)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "0.4" in result.stdout and "0.3" in result.stdout


def test_tampered_chapter_output_fails(root, tmp_path):
    """Change one printed number in chapter 1's stored outputs: the notebook test must fail."""
    source = root / "notebooks" / "01_dot_product.ipynb"
    nb = json.loads(source.read_text())
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            text = "".join(output.get("text", []))
            if output.get("name") == "stdout" and "largest weight" in text:
                output["text"] = [text.replace("0.596", "0.597", 1)]
                break
        else:
            continue
        break
    else:
        raise AssertionError(
            "chapter 1 no longer prints 'largest weight 0.596'"
        )
    copy = tmp_path / "notebooks" / source.name
    copy.parent.mkdir()
    copy.write_text(json.dumps(nb))
    shutil.copy(root / "jupytext.toml", tmp_path)
    result = run_nbval(copy, root)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "0.597" in result.stdout
