"""`pip install .` gives an importable package (built without the notebooks or the venv).

pip builds one wheel, as `pip install .` does; the tests install it and read it."""

import email
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds from the project."""
    folder = tmp_path_factory.mktemp("wheel")
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
            str(folder),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = folder.glob("transformer_lite-*.whl")
    return built


def test_pip_install_then_import_and_run_the_description_example(
    wheel, tmp_path
):
    """Installed by pip, the package imports and works outside the clone, and the
    Python example of PACKAGE.md (the index's long description) runs as shown."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    (example,) = re.findall(
        r"```python\n(.*?)```", (ROOT / "PACKAGE.md").read_text(), re.S
    )
    code = (
        "import torch, transformer_lite as tl\n"
        f"assert tl.__file__.startswith({str(target)!r}), tl.__file__\n"
        "q, k, v = torch.ones(1, 2, 4), torch.ones(1, 3, 4), torch.ones(1, 3, 5)\n"
        "out, w = tl.dot_product_attention(q, k, v)\n"
        "print(tuple(out.shape), tuple(w.shape))\n"
        "del torch, tl, q, k, v, out, w\n"
        f"exec({example!r})\n"
        "print(tuple(logits.shape))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": ""},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    imported, example_ran = result.stdout.splitlines()
    assert imported == "(1, 2, 5) (1, 2, 3)"
    assert example_ran == "(2, 7, 100)", "PACKAGE.md's example"


def test_wheel_metadata_license_and_typing(wheel):
    """The wheel a package index would show: version, license, dependencies, extras,
    a description that works outside a clone, and py.typed for type checkers."""
    import transformer_lite

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
