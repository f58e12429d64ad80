"""A module written by several cells gets every cell's imports at its top."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import nbexport  # noqa: E402


def test_imports_of_later_cells_move_to_the_top():
    cells = [
        ("notebooks/00_a.ipynb", "import math\n\n\ndef one():\n    return 1"),
        (
            "notebooks/03_b.ipynb",
            "import math\nfrom pathlib import (\n    Path,\n)\n\n\n"
            "def two():\n    import torch  # stays: a local import\n"
            "    return Path, torch",
        ),
    ]
    text, names = nbexport.module_text("shared", cells)
    lines = text.splitlines()
    first_def = lines.index("def one():")
    assert lines.count("import math") == 1
    assert lines.index("import math") < first_def
    assert lines.index("from pathlib import (") < first_def
    assert "    import torch  # stays: a local import" in lines
    assert names == ["one", "two"]
    assert "notebooks/00_a.ipynb, notebooks/03_b.ipynb" in lines[0]
