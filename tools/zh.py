"""The Chinese edition: stored translations, checked against the English, and built.

The English notebooks and pages are the source. For each page of the book (``_toc.yml``),
``book/zh/<stem>.yml`` holds the Chinese of its prose, one entry per unit:

- a notebook's unit is a Markdown cell, named by the cell's id;
- a Markdown page's unit is a section (the text from one heading to the next), named by
  a slug of its heading (``top`` for any text before the first heading).

Each entry keeps the English it was translated from (``en``) and that text's hash
(``hash``), so a change to the English is caught, and shown as a diff, until the Chinese is
brought up to date. Code cells and their outputs are never translated: the Chinese
notebooks carry the English ones byte for byte.

    python tools/zh.py check             # every unit translated, from its current English;
                                         # the glossary's rules hold (book/zh/terms.yml)
    python tools/zh.py update PAGE...    # add entries (zh empty) for new units of pages
    python tools/zh.py done PAGE ID...   # record that these entries' zh follows the
                                         # current English (after revising them)
    python tools/zh.py build [--out zh]  # check, then write the Chinese book: notebooks,
                                         # pages, _config.yml and _toc.yml

PAGE is a stem: ``03_masks``, ``intro``. ``make zh`` runs ``build``; ``make book`` builds the
Chinese edition from it into ``_build/html/zh``; ``make check`` runs ``check``.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
STORE = (
    "book/zh"  # the translations and the glossary, relative to the project
)
TERMS = "terms.yml"
# the table of contents' captions, in Chinese (a caption without one stops the build)
CAPTIONS = {"Chapters": "章节", "Appendix": "附录", "Reference": "参考"}
# the Chinese edition's title and Sphinx settings (the rest of _config.yml is the English's)
TITLE = "transformer_lite 中文版"
COPYRIGHT = "2026 transformer_lite 的作者。代码：MIT 许可证；文字：CC BY 4.0"
LANGUAGE = "zh_CN"


# ---------------------------------------------------------------- the English units


@dataclass
class Unit:
    id: str
    text: str

    @property
    def hash(self) -> str:
        return text_hash(self.text)

    @property
    def label(self) -> str:
        """The unit's first line, to name it in messages."""
        first = self.text.strip().splitlines()[0] if self.text.strip() else ""
        return first if len(first) <= 60 else first[:57] + "..."


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def pages(root: Path = ROOT) -> list[Path]:
    """The book's source files, in the order of ``_toc.yml``."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]]
    for part in toc.get("parts", []):
        names += [chapter["file"] for chapter in part.get("chapters", [])]
    found = []
    for name in names:
        candidates = [root / f"{name}.ipynb", root / f"{name}.md"]
        source = next((path for path in candidates if path.exists()), None)
        if source is None:
            raise SystemExit(
                f"_toc.yml names {name}, which has no .ipynb or .md"
            )
        found.append(source)
    return found


FENCE = re.compile(r"^\s*(`{3,}|~{3,}|:{3,})")
HEADING = re.compile(r"^#{1,6}\s+(.*)$")


def md_sections(text: str) -> list[Unit]:
    """A Markdown page cut before each heading outside fences (blank lines between them dropped)."""
    lines = text.splitlines(keepends=True)
    starts, fence = [0], None
    for number, line in enumerate(lines):
        opened = FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)
        elif fence is not None and line.strip().startswith(
            fence[0] * len(fence)
        ):
            if line.strip() == line.strip()[0] * len(line.strip()):
                fence = None
        elif fence is None and HEADING.match(line) and number:
            starts.append(number)
    units, seen = [], {}
    for start, end in zip(starts, starts[1:] + [len(lines)], strict=True):
        chunk = "".join(lines[start:end]).rstrip("\n")
        heading = HEADING.match(lines[start])
        slug = slugify(heading.group(1)) if heading else "top"
        seen[slug] = seen.get(slug, 0) + 1
        units.append(
            Unit(slug if seen[slug] == 1 else f"{slug}-{seen[slug]}", chunk)
        )
    return units


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "section"


def units(source: Path) -> list[Unit]:
    if source.suffix == ".md":
        return md_sections(source.read_text(encoding="utf-8"))
    notebook = json.loads(source.read_text(encoding="utf-8"))
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        if "id" not in cell:
            raise SystemExit(
                f"{source}: Markdown cell {index} has no id (nbformat < 4.5)"
            )
        found.append(Unit(cell["id"], "".join(cell["source"])))
    return found


# ---------------------------------------------------------------- the stored translations


def store_path(source: Path, root: Path = ROOT) -> Path:
    return root / STORE / f"{source.stem}.yml"


def load_store(path: Path) -> list[dict]:
    if not path.exists():
        return []
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    for entry in entries:
        for key in ("id", "hash", "en", "zh"):
            if key not in entry:
                raise SystemExit(f"{path}: an entry has no {key!r}: {entry}")
        entry["id"] = str(entry["id"])
        entry["hash"] = str(entry["hash"])
        entry["zh"] = entry["zh"] or ""
    return entries


def block(key: str, text: str) -> str:
    """``key: |-`` and the text indented, or a quoted string where a block cannot hold it."""
    lines = text.split("\n")
    plain = text and not text[0].isspace() and not text.endswith("\n")
    if plain and all(line == line.rstrip() for line in lines):
        body = "\n".join(f"    {line}" if line else "" for line in lines)
        return f"  {key}: |-\n{body}\n"
    quoted = json.dumps(text, ensure_ascii=False)
    return f"  {key}: {quoted}\n"


def dump_store(entries: list[dict], source: Path) -> str:
    head = (
        f"# {source.relative_to(source.parents[1])} in Chinese: one entry per "
        f"{'Markdown cell' if source.suffix == '.ipynb' else 'section'}.\n"
        "# `en` and `hash` are the English the Chinese was made from; see tools/zh.py.\n"
    )
    parts = [head]
    for entry in entries:
        parts.append(
            f"- id: {json.dumps(entry['id'])}\n  hash: {entry['hash']}\n"
        )
        parts.append(block("en", entry["en"]))
        parts.append(block("zh", entry["zh"]))
    text = "".join(parts)
    assert (
        yaml.safe_load(text)
        == [
            {key: entry[key] for key in ("id", "hash", "en", "zh")}
            for entry in entries
        ]
        or not entries
    ), "the translation file would not read back as written"
    return text


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


# ---------------------------------------------------------------- the glossary's rules


@dataclass
class Term:
    en: list[str]
    zh: str
    definition: str
    avoid: list[str]
    plain: bool

    @property
    def annotated(self) -> bool:
        """Whether its first use in a page must carry the English in parentheses."""
        return not self.plain and len(self.zh) > 1 and not self.zh.isascii()

    def english(self) -> re.Pattern:
        forms = "|".join(
            re.escape(form).replace(r"\-", r"[-\s]").replace(r"\ ", r"[-\s]")
            for form in sorted(self.en, key=len, reverse=True)
        )
        return re.compile(rf"(?<![\w-])(?:{forms})(?![\w-])", re.IGNORECASE)


def load_terms(root: Path = ROOT) -> list[Term]:
    raw = yaml.safe_load((root / STORE / TERMS).read_text(encoding="utf-8"))
    return [
        Term(
            en=list(item["en"]),
            zh=item["zh"],
            definition=item["def"],
            avoid=list(item.get("avoid", [])),
            plain=bool(item.get("plain", False)),
        )
        for item in raw
    ]


CODE_FENCE_DIRECTIVES = (
    "code",
    "code-cell",
    "code-block",
    "math",
    "eval-rst",
)


def prose(text: str) -> str:
    """The words of a Markdown text: no code, math, link targets, HTML or labels."""
    kept, fence, skip = [], None, False
    for line in text.splitlines():
        opened = FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)
            rest = line.strip()[len(fence) :].strip()
            directive = re.match(r"\{([\w-]+)\}", rest)
            name = directive.group(1) if directive else ""
            skip = (
                not directive
                or name in CODE_FENCE_DIRECTIVES
                or name.startswith("auto")
            )
            if directive and not skip:
                kept.append(rest[directive.end() :])  # an admonition's title
            continue
        if (
            fence is not None
            and line.strip()
            and set(line.strip()) == {fence[0]}
        ):
            if len(line.strip()) >= len(fence):
                fence, skip = None, False
                continue
        if (
            skip
            or re.match(r"^\s*:[\w-]+:", line)
            or re.match(r"^\(.*\)=\s*$", line)
        ):
            continue
        kept.append(line)
    words = "\n".join(kept)
    words = re.sub(r"\$\$.*?\$\$", " ", words, flags=re.DOTALL)
    words = re.sub(r"(?<!\\)\$[^$\n]+\$", " ", words)
    words = re.sub(
        r"\{[\w:-]+\}`[^`]*`", " ", words
    )  # {ref}`...`, {doc}`...`
    words = re.sub(r"`[^`]*`", " ", words)
    words = re.sub(r"\]\([^)]*\)", "]", words)
    words = re.sub(r"<[^>]+>", " ", words)
    return words


def first_use_spans(term: Term, terms: list[Term], text: str) -> list[int]:
    """Where ``term.zh`` occurs in ``text`` on its own, not as part of a longer term."""
    covered = set()
    for other in terms:
        if len(other.zh) > len(term.zh) and term.zh in other.zh:
            for match in re.finditer(re.escape(other.zh), text):
                covered.update(range(match.start(), match.end()))
    return [
        match.start()
        for match in re.finditer(re.escape(term.zh), text)
        if match.start() not in covered
    ]


# the English in parentheses, right after the term or after its emphasis: **查询**（query）
ANNOTATION = re.compile(r"[*_]*\s*[（(]([^）)]*)[）)]")


def lint(
    page: str, translated: list[tuple[Unit, str]], terms: list[Term]
) -> list[str]:
    """The glossary's rules, for one page: (English unit, its Chinese) in page order."""
    problems = []
    for unit, zh in translated:
        english, chinese = prose(unit.text), prose(zh)
        where = f"{page}, {unit.id} ({unit.label})"
        for term in terms:
            if term.english().search(english) and term.zh not in chinese:
                used = term.english().search(english).group(0)
                problems.append(
                    f"{where}: the English says {used!r}; the Chinese must say {term.zh}"
                )
            for avoided in term.avoid:
                if avoided in chinese:
                    problems.append(
                        f"{where}: {avoided} for {term.en[0]!r}; the glossary's word is {term.zh}"
                    )
    text = "\n".join(prose(zh) for _, zh in translated)
    for term in terms:
        if not term.annotated:
            continue
        uses = first_use_spans(term, terms, text)
        if not uses:
            continue
        after = ANNOTATION.match(text, uses[0] + len(term.zh))
        inside = after.group(1).lower() if after else ""
        if not any(
            re.search(rf"(?<!\w){re.escape(form.lower())}", inside)
            for form in term.en
        ):
            context = text[max(0, uses[0] - 10) : uses[0] + len(term.zh) + 10]
            problems.append(
                f"{page}: the first {term.zh} of the page ({context.strip()!r}) needs the "
                f"English in parentheses, e.g. {term.zh}（{term.en[0]}）"
            )
    return problems


# ---------------------------------------------------------------- check, update, done


def check(root: Path = ROOT) -> list[str]:
    """Every problem of the Chinese edition, one line each (empty: all is well)."""
    problems, terms = [], load_terms(root)
    for term in terms:  # the glossary's own definitions follow its rules too
        for other in terms:
            problems += [
                f"{STORE}/{TERMS}, {term.en[0]!r}: its definition uses {avoided}, "
                f"not the glossary's {other.zh}"
                for avoided in other.avoid
                if avoided in term.definition
            ]
    for source in pages(root):
        path = store_path(source, root)
        page = str(path.relative_to(root))
        if not path.exists():
            problems.append(
                f"{page}: missing; create it with `python tools/zh.py update {source.stem}`"
            )
            continue
        stored = {entry["id"]: entry for entry in load_store(path)}
        english = units(source)
        translated = []
        for unit in english:
            entry = stored.get(unit.id)
            where = f"{page}, {unit.id} ({unit.label})"
            if not unit.text.strip():
                continue  # an empty English cell needs no Chinese
            if entry is None or not entry["zh"].strip():
                problems.append(f"{where}: no translation")
                continue
            if entry["hash"] != unit.hash or entry["en"] != unit.text:
                diff = "\n".join(
                    "    " + line
                    for line in difflib.unified_diff(
                        entry["en"].splitlines(),
                        unit.text.splitlines(),
                        "translated from",
                        "English now",
                        lineterm="",
                        n=0,
                    )
                )
                problems.append(
                    f"{where}: translated from an older English text; revise the Chinese, "
                    f"then `python tools/zh.py done {source.stem} {unit.id}`\n{diff}"
                )
            translated.append((unit, entry["zh"]))
        ids = {unit.id for unit in english}
        for key in stored:
            if key not in ids:
                problems.append(
                    f"{page}, {key}: no English unit has this id any more"
                )
        problems += lint(page, translated, terms)
    return problems


def update(stems: list[str], root: Path = ROOT) -> None:
    by_stem = {source.stem: source for source in pages(root)}
    for stem in stems:
        if stem not in by_stem:
            raise SystemExit(
                f"no page {stem!r} in _toc.yml; pages: {', '.join(by_stem)}"
            )
        source = by_stem[stem]
        path = store_path(source, root)
        stored = {entry["id"]: entry for entry in load_store(path)}
        entries = [
            stored.get(unit.id)
            or {"id": unit.id, "hash": unit.hash, "en": unit.text, "zh": ""}
            for unit in units(source)
        ]
        write_atomically(path, dump_store(entries, source))
        new = sum(1 for unit in units(source) if unit.id not in stored)
        print(f"{path.relative_to(root)}: {len(entries)} entries, {new} new")


def done(stem: str, ids: list[str], root: Path = ROOT) -> None:
    by_stem = {source.stem: source for source in pages(root)}
    if stem not in by_stem:
        raise SystemExit(f"no page {stem!r} in _toc.yml")
    source = by_stem[stem]
    path = store_path(source, root)
    entries = load_store(path)
    current = {unit.id: unit for unit in units(source)}
    for key in ids:
        entry = next((entry for entry in entries if entry["id"] == key), None)
        if entry is None or key not in current:
            raise SystemExit(
                f"{path.relative_to(root)}: no entry {key!r} with an English unit"
            )
        entry["en"], entry["hash"] = current[key].text, current[key].hash
    write_atomically(path, dump_store(entries, source))


# ---------------------------------------------------------------- build


def translated_text(source: Path, root: Path = ROOT) -> dict[str, str]:
    return {
        entry["id"]: entry["zh"]
        for entry in load_store(store_path(source, root))
    }


def build(out: Path, root: Path = ROOT) -> None:
    """The Chinese book under ``out``: same files and layout as the English, prose in Chinese."""
    problems = check(root)
    if problems:
        raise SystemExit(
            "the Chinese edition is not up to date with the English:\n"
            + "\n".join(problems)
        )
    staging = out.with_name(out.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    for source in pages(root):
        zh = translated_text(source, root)
        target = staging / source.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == ".md":
            target.write_text(
                "\n\n".join(zh[unit.id].strip("\n") for unit in units(source))
                + "\n",
                encoding="utf-8",
            )
            continue
        notebook = json.loads(source.read_text(encoding="utf-8"))
        for cell in notebook["cells"]:
            if cell["cell_type"] == "markdown":
                cell["source"] = zh[cell["id"]].splitlines(keepends=True)
        # a generated notebook: no .py pair (jupytext would write one beside it)
        notebook["metadata"].pop("jupytext", None)
        target.write_text(
            json.dumps(notebook, indent=1, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    config = yaml.safe_load(
        (root / "_config.yml").read_text(encoding="utf-8")
    )
    config["title"], config["copyright"] = TITLE, COPYRIGHT
    up = (
        os.path.relpath(root, out.resolve())
        if out.is_absolute()
        else os.path.relpath(root, (root / out).resolve())
    )
    config["sphinx"]["local_extensions"] = {
        name: f"{up}/{path}"
        for name, path in config["sphinx"]["local_extensions"].items()
    }
    config["sphinx"]["config"].update(
        language=LANGUAGE,
        html_search_language="zh",
        book_edition="zh",
        book_project=up,
    )
    favicon = config.get("html", {}).get("favicon")
    if favicon:
        (staging / favicon).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / favicon, staging / favicon)
    (staging / "_config.yml").write_text(
        "# Generated by tools/zh.py from the English _config.yml: do not edit.\n"
        + yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    for part in toc.get("parts", []):
        if part.get("caption") not in CAPTIONS:
            raise SystemExit(
                f"_toc.yml's caption {part.get('caption')!r} has no Chinese: "
                "add it to CAPTIONS in tools/zh.py"
            )
        part["caption"] = CAPTIONS[part["caption"]]
    (staging / "_toc.yml").write_text(
        "# Generated by tools/zh.py from the English _toc.yml: do not edit.\n"
        + yaml.safe_dump(toc, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    # chapter 8 reads ../benchmarks/results/cpu.json, as it does in the English tree
    (staging / "benchmarks").symlink_to(Path(up) / "benchmarks")
    (staging / "README.md").write_text(
        "This folder is generated by `make zh` (tools/zh.py) from the English notebooks\n"
        "and the translations in book/zh/. Edit those, not these files.\n",
        encoding="utf-8",
    )
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "check", help="every unit translated from its current English"
    )
    adding = commands.add_parser("update", help="add entries for new units")
    adding.add_argument("pages", nargs="+")
    marking = commands.add_parser(
        "done", help="record that entries follow the English"
    )
    marking.add_argument("page")
    marking.add_argument("ids", nargs="+")
    building = commands.add_parser("build", help="write the Chinese book")
    building.add_argument("--out", type=Path, default=Path("zh"))
    args = parser.parse_args(argv)
    if args.command == "check":
        problems = check()
        for problem in problems:
            print(problem)
        if problems:
            print(
                f"{len(problems)} problems in the Chinese edition",
                file=sys.stderr,
            )
            return 1
        return 0
    if args.command == "update":
        update(args.pages)
    elif args.command == "done":
        done(args.page, args.ids)
    else:
        build(args.out if args.out.is_absolute() else ROOT / args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
