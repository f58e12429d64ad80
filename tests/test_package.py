"""`pip install .` gives an importable package (built without the notebooks or the venv)."""

import subprocess
import sys


def test_pip_install_then_import(root, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import torch, transformer_lite as tl\n"
        f"assert tl.__file__.startswith({str(target)!r}), tl.__file__\n"
        "q, k, v = torch.ones(1, 2, 4), torch.ones(1, 3, 4), torch.ones(1, 3, 5)\n"
        "out, w = tl.dot_product_attention(q, k, v)\n"
        "print(tuple(out.shape), tuple(w.shape))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 2, 5) (1, 2, 3)"
