"""Bring each notebook and its py:percent pair together, without ever losing an edit.

    python tools/nbsync.py [NOTEBOOK ...]            # every chapter when none is named
    python tools/nbsync.py --prefer py NOTEBOOK      # a conflict: the .py wins
    python tools/nbsync.py --prefer ipynb NOTEBOOK   # a conflict: the .ipynb wins

For each pair it compares both halves with the text they last agreed on: the record this
tool keeps in ``notebooks/.sync/`` (not tracked by git) after every sync, or, before the
first one, the pair as committed at git's HEAD (``make check`` keeps committed pairs equal).

- Both halves equal: nothing to do.
- Only one half changed: it is copied to the other. A changed ``.py`` updates the
  notebook's cells and keeps the outputs of every cell whose code is unchanged.
- Both changed (or there is no record to compare with, and they differ): nothing is
  written. The tool names the cells where the two halves differ and exits with status 1;
  ``--prefer py`` or ``--prefer ipynb`` (``make sync PREFER=py``) chooses a side.

File times play no part: a fresh clone or a copy scrambles them, and "the newer file
wins" is how an edit made in the other half gets dropped.
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
from pathlib import Path

import jupytext
from nbexport import as_percent, notebooks

RECORD = Path("notebooks") / ".sync"


def normalised(text: str) -> str:
    """py:percent text as as_percent writes it (no jupytext metadata)."""
    nb = jupytext.reads(text, fmt="py:percent")
    nb.metadata.pop("jupytext", None)
    return jupytext.writes(nb, fmt="py:percent")


def last_agreed(root: Path, pair: Path) -> str | None:
    """The text both halves last agreed on, or None when nothing says."""
    record = root / RECORD / pair.name
    if record.exists():
        return record.read_text()
    committed = subprocess.run(
        ["git", "show", f"HEAD:{pair.relative_to(root).as_posix()}"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    return normalised(committed.stdout) if committed.returncode == 0 else None


def remember(root: Path, pair: Path, text: str) -> None:
    record = root / RECORD / pair.name
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(text)


def cells(text: str) -> list[str]:
    """The cells of py:percent text, each as its source."""
    return [
        cell.source for cell in jupytext.reads(text, fmt="py:percent").cells
    ]


def differing_cells(from_nb: str, from_pair: str) -> list[str]:
    """One line per cell where the two halves differ, numbered as in each."""
    a, b = cells(from_nb), cells(from_pair)
    lines = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        for i in range(i1, i2):
            lines.append(f"cell {i + 1} of the .ipynb: {first_line(a[i])}")
        for j in range(j1, j2):
            lines.append(f"cell {j + 1} of the .py:    {first_line(b[j])}")
    return lines


def first_line(source: str) -> str:
    line = next((s for s in source.splitlines() if s.strip()), "(empty)")
    return repr(line[:70])


def jupytext_cli(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "jupytext", "--quiet", *args],
        check=True,
    )


def sync(root: Path, notebook: Path, prefer: str | None) -> list[str]:
    """Sync one pair; return the conflict's lines (empty when done)."""
    pair = notebook.with_suffix(".py")
    if not pair.exists():
        jupytext_cli("--to", "py:percent", str(notebook))
        remember(root, pair, as_percent(notebook))
        return []
    if not notebook.exists():
        jupytext_cli("--to", "ipynb", str(pair))
        remember(root, pair, as_percent(pair))
        return []
    from_nb, from_pair = as_percent(notebook), as_percent(pair)
    if from_nb != from_pair:
        base = last_agreed(root, pair)
        winner = prefer
        if winner is None and base is not None:
            if from_nb == base:
                winner = "py"
            elif from_pair == base:
                winner = "ipynb"
        if winner is None:
            return differing_cells(from_nb, from_pair)
        if winner == "py":  # new cells from the .py, outputs kept
            jupytext_cli("--update", "--to", "ipynb", str(pair))
        else:
            jupytext_cli("--to", "py:percent", str(notebook))
        print(f"{notebook.relative_to(root)}: the .{winner} half was copied")
    remember(root, pair, as_percent(notebook))
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--prefer", choices=["py", "ipynb"])
    parser.add_argument(
        "--root", type=Path, default=Path(__file__).resolve().parent.parent
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    chosen = [p.resolve() for p in args.notebooks] or [
        path for path, _ in notebooks(root)
    ]
    failed = 0
    for path in chosen:
        notebook = path.with_suffix(".ipynb")
        conflict = sync(root, notebook, args.prefer)
        if conflict:
            failed += 1
            name = notebook.relative_to(root).with_suffix("")
            print(
                f"{name}: the .ipynb and the .py both changed since they last "
                "agreed; nothing was written. Where they differ:",
                file=sys.stderr,
            )
            for line in conflict:
                print(f"    {line}", file=sys.stderr)
            print(
                "  Keep one side: make sync PREFER=py (or PREFER=ipynb), "
                f"or python tools/nbsync.py --prefer py {notebook.relative_to(root)}",
                file=sys.stderr,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
