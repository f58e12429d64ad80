"""Saving in Jupyter updates both halves of a chapter's pair, however the server is started.

A real Jupyter server (127.0.0.1, a free port, a token) is rooted at a folder outside
the project, where no ``jupytext.toml`` is in sight: the pairing must come from the
notebook's own metadata. Each test saves in a copy of a chapter's pair of its own, in a
subfolder; the server is started once for them all. Saving goes through the contents
API, the path JupyterLab uses when you press Ctrl+S.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jupytext
import pytest

CHAPTERS = sorted(
    (Path(__file__).resolve().parent.parent / "notebooks").glob(
        "[0-9][0-9]_*.ipynb"
    )
)
CHAPTER = "03_masks"
TOKEN = "pairing-test-token"


def test_every_notebook_carries_its_pairing():
    for notebook in CHAPTERS:
        formats = (
            jupytext.read(notebook)
            .metadata.get("jupytext", {})
            .get("formats")
        )
        assert formats == "ipynb,py:percent", (
            f"{notebook.name}: formats={formats!r}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    """A Jupyter server rooted at an empty folder; yields (api, folder)."""
    tmp_path = tmp_path_factory.mktemp("jupyter")
    folder = tmp_path / "served"
    folder.mkdir()
    port = free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = tmp_path / "server.log"  # a file: a pipe nobody reads could fill up
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={folder}",
                "--ServerApp.open_browser=False",
                "--allow-root",
            ],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        api = f"http://127.0.0.1:{port}/api"
        try:
            for _ in range(300):  # up to 30 s to start
                try:
                    request("GET", f"{api}/status")
                    break
                except OSError:
                    if process.poll() is not None:
                        pytest.fail(
                            f"jupyter server exited: {log.read_text()}"
                        )
                    time.sleep(0.1)
            else:
                pytest.fail("jupyter server did not answer in 30 s")
            yield api, folder
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture
def server(jupyter, root, request):
    """A copy of the chapter's pair in a folder of this test's own, served by the
    Jupyter server: (the contents API's URL of that folder, the folder)."""
    api, served = jupyter
    folder = served / request.node.name
    folder.mkdir()
    for suffix in (".ipynb", ".py"):
        shutil.copy(root / "notebooks" / f"{CHAPTER}{suffix}", folder)
    return f"{api}/contents/{folder.name}", folder


def request(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={
            "Authorization": f"token {TOKEN}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(
        req, timeout=60
    ) as response:  # 127.0.0.1 only
        return json.loads(response.read() or b"{}")


def save(contents: str, name: str, model: dict) -> None:
    body = {"type": "notebook", "format": "json", "content": model["content"]}
    request("PUT", f"{contents}/{name}", body)


def retitle(model: dict, title: str) -> None:
    first = model["content"]["cells"][0]
    assert first["cell_type"] == "markdown"
    first["source"] = first["source"].replace("# 3. Masking", title, 1)


def test_saving_the_notebook_updates_the_py(server):
    contents, folder = server
    model = request("GET", f"{contents}/{CHAPTER}.ipynb?content=1")
    retitle(model, "# 3. Masking, saved from Jupyter")
    save(contents, f"{CHAPTER}.ipynb", model)
    assert (
        "# # 3. Masking, saved from Jupyter"
        in (folder / f"{CHAPTER}.py").read_text()
    )


def test_saving_the_py_as_a_notebook_updates_the_ipynb_and_keeps_outputs(
    server,
):
    contents, folder = server
    model = request("GET", f"{contents}/{CHAPTER}.py?type=notebook&content=1")
    code = [c for c in model["content"]["cells"] if c["cell_type"] == "code"]
    assert any(c["outputs"] for c in code), (
        "opening the .py shows the outputs"
    )
    retitle(model, "# 3. Masking, saved from the .py")
    save(contents, f"{CHAPTER}.py", model)
    nb = json.loads((folder / f"{CHAPTER}.ipynb").read_text())
    assert "3. Masking, saved from the .py" in "".join(
        nb["cells"][0]["source"]
    )
    assert any(
        c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"
    )
