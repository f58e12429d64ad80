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


def test_wheel_metadata_license_and_typing(root, tmp_path):
    """The wheel a package index would show: version, license, dependencies, extras,
    a description that works outside a clone, and py.typed for type checkers."""
    import email
    import re
    import zipfile

    import transformer_lite

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("transformer_lite-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta_name = next(
            n for n in names if n.endswith(".dist-info/METADATA")
        )
        meta = email.message_from_bytes(archive.read(meta_name))
    assert "transformer_lite/py.typed" in names
    assert meta["Name"] == "transformer_lite"
    assert meta["Version"] == transformer_lite.__version__
    assert meta["License-Expression"] == "MIT"
    assert set(meta.get_all("License-File")) == {"LICENSE", "LICENSE-BOOK"}
    requires = meta.get_all("Requires-Dist")
    assert any(r.startswith("torch") for r in requires)
    assert any(r.startswith("numpy") for r in requires)
    assert set(meta.get_all("Provides-Extra")) >= {"plot", "train"}
    description = meta.get_payload()
    assert meta["Description-Content-Type"] == "text/markdown"
    assert "pip install" in description
    assert not re.search(r"\bmake \w", description)  # no commands of a clone


def test_package_description_example_runs(root, tmp_path):
    """The Python example of PACKAGE.md (the index's long description) runs as shown."""
    import re

    (example,) = re.findall(
        r"```python\n(.*?)```", (root / "PACKAGE.md").read_text(), re.S
    )
    result = subprocess.run(
        [sys.executable, "-c", example + "\nprint(tuple(logits.shape))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 7, 100)"
