"""The Chinese edition (tools/zh.py): never stale, one word per term, same code and outputs.

The checks run on a copy of the book's sources (the notebooks, the pages, the
translations), so each failure can be caused on purpose: an English cell edited after its
translation, an English cell added, a translation deleted, a glossary term rendered
another way or introduced without its English.
"""

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import zh  # noqa: E402


@pytest.fixture
def copy(tmp_path):
    """The sources tools/zh.py reads, copied: _toc.yml, notebooks, pages, translations."""
    shutil.copy2(ROOT / "_toc.yml", tmp_path / "_toc.yml")
    shutil.copy2(ROOT / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "notebooks").mkdir()
    for notebook in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        shutil.copy2(notebook, tmp_path / "notebooks" / notebook.name)
    shutil.copytree(ROOT / "book", tmp_path / "book")
    (tmp_path / "benchmarks").mkdir()
    return tmp_path


def edit_cell(root: Path, notebook: str, index: int, change) -> str:
    """Apply ``change`` to the source of the notebook's ``index``-th Markdown cell."""
    path = root / "notebooks" / notebook
    data = json.loads(path.read_text(encoding="utf-8"))
    cell = [c for c in data["cells"] if c["cell_type"] == "markdown"][index]
    cell["source"] = change("".join(cell["source"])).splitlines(keepends=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return cell["id"]


def edit_translation(root: Path, stem: str, index: int, change) -> None:
    path = root / "book" / "zh" / f"{stem}.yml"
    source = next(p for p in zh.pages(root) if p.stem == stem)
    entries = zh.load_store(path)
    entries[index]["zh"] = change(entries[index]["zh"])
    path.write_text(zh.dump_store(entries, source), encoding="utf-8")


def test_the_chinese_edition_is_complete_and_current():
    assert zh.check() == []


def test_an_edited_english_cell_is_stale_until_its_translation_is_revised(
    copy,
):
    cell = edit_cell(
        copy, "03_masks.ipynb", 1, lambda s: s + "\n\nA new sentence."
    )
    problems = zh.check(copy)
    assert len(problems) == 1, problems
    assert cell in problems[0] and "older English" in problems[0]
    assert "+A new sentence." in problems[0]  # the diff says what changed
    # revised (here: the translator adds the sentence) and recorded as done
    edit_translation(copy, "03_masks", 1, lambda s: s + "\n\n一个新句子。")
    zh.done("03_masks", [cell], copy)
    assert zh.check(copy) == []


def test_a_new_english_cell_or_a_deleted_translation_has_no_translation(copy):
    path = copy / "notebooks" / "02_attention.ipynb"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["cells"].insert(
        1,
        {
            "cell_type": "markdown",
            "id": "new-cell",
            "metadata": {},
            "source": ["## A new section"],
        },
    )
    path.write_text(json.dumps(data, indent=1))
    edit_translation(copy, "05_encoder", 2, lambda s: "")
    problems = zh.check(copy)
    assert len(problems) == 2, problems
    assert (
        "02_attention.yml, new-cell (## A new section): no translation"
        in (problems[0])
    )
    assert "05_encoder.yml" in problems[1] and "no translation" in problems[1]
    # `update` adds an empty entry for the new cell, which is still reported
    zh.update(["02_attention"], copy)
    assert "new-cell" in zh.check(copy)[0]


def test_a_stale_book_is_not_built_and_nothing_is_written(copy, tmp_path):
    out = tmp_path / "zh-out"
    edit_cell(copy, "01_dot_product.ipynb", 0, lambda s: s + " More.")
    with pytest.raises(SystemExit, match="not up to date"):
        zh.build(out, copy)
    assert not out.exists()
    assert not out.with_name(out.name + ".new").exists()


def test_a_glossary_term_rendered_another_way_fails(copy):
    # 遮罩 is on the glossary's list of renderings to avoid for "mask" (掩码)
    edit_translation(copy, "03_masks", 1, lambda s: s + "\n\n遮罩")
    problems = zh.check(copy)
    assert any("遮罩" in p and "掩码" in p for p in problems), problems


def test_a_term_the_english_uses_must_be_in_the_chinese(copy):
    # the English of chapter 3's second cell says "mask"; its Chinese without 掩码
    edit_translation(copy, "03_masks", 1, lambda s: s.replace("掩码", "X"))
    problems = zh.check(copy)
    assert any(
        "the Chinese must say 掩码" in p and "03_masks.yml" in p
        for p in problems
    ), problems


def test_a_term_first_used_without_its_english_fails(copy):
    # chapter 3's first cell introduces 掩码（mask）; drop the parenthesis
    edit_translation(
        copy,
        "03_masks",
        0,
        lambda s: s.replace("（mask）", "", 1).replace("(mask)", "", 1),
    )
    problems = zh.check(copy)
    assert any(
        "first 掩码" in p and "English in parentheses" in p for p in problems
    ), problems


def test_the_chinese_notebooks_carry_the_english_code_and_outputs(
    copy, tmp_path
):
    out = tmp_path / "zh-out"
    zh.build(out, copy)
    for english in sorted((copy / "notebooks").glob("*.ipynb")):
        source = json.loads(english.read_text(encoding="utf-8"))
        chinese = json.loads(
            (out / "notebooks" / english.name).read_text(encoding="utf-8")
        )
        assert len(chinese["cells"]) == len(source["cells"])
        translations = zh.translated_text(english, copy)
        for ours, theirs in zip(
            chinese["cells"], source["cells"], strict=True
        ):
            if theirs["cell_type"] == "code":
                assert ours == theirs
            else:
                assert "".join(ours["source"]) == translations[theirs["id"]]
                assert ours["source"] != theirs["source"]
        assert "jupytext" not in chinese["metadata"]  # no .py pair beside it
    # a page: its sections in Chinese, in the English order
    intro = (out / "book" / "intro.md").read_text(encoding="utf-8")
    first = zh.units(copy / "book" / "intro.md")[0].id
    assert intro.startswith(
        zh.translated_text(copy / "book/intro.md", copy)[first]
    )
    assert (out / "_config.yml").read_text().count("language: zh_CN") == 1


def test_markdown_pages_split_at_headings_outside_fences():
    text = (
        "intro\n\n# One\n\nbody\n\n```python\n# not a heading\n```\n\n"
        "## Two\n\n:::{note}\n# nor this\n:::\n\n## Two\n"
    )
    units = zh.md_sections(text)
    assert [u.id for u in units] == ["top", "one", "two", "two-2"]
    assert (
        "# not a heading" in units[1].text and "# nor this" in units[2].text
    )
    assert "\n\n".join(u.text for u in units) + "\n" == text


def test_prose_leaves_out_code_math_and_link_targets():
    text = (
        "A `mask` and $q \\cdot k$ in [the mask chapter](03_masks.ipynb).\n"
        "```python\nmask = None\n```\n(ch3-label)=\n"
    )
    words = zh.prose(text)
    assert "mask" not in words.replace("the mask chapter", "")
    assert "cdot" not in words and "03_masks" not in words
