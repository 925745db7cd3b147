"""Keep the Chinese edition (notebooks/zh-CN/) in step with the English notebooks.

    python -m captum_course translations            # which cells are stale or untranslated;
                                                    # exit 1 if any
    python -m captum_course translations --show     # ... with the English text to translate
    python -m captum_course translations --sync     # make the structure match the English notebooks
    python -m captum_course translations --done 02_integrated_gradients 5 7
                                                    # record cells as translated

Each edition's code is in its own language: the Chinese code cells print, plot and comment in
Chinese, and are the English program token for token once the text of strings and comments is
set aside (``same_program``). The Chinese strings are written in the Chinese notebooks, where a
translator reads them in place, beside the code they belong to.

Every cell of the Chinese edition, Markdown and code, keeps in its metadata the SHA-256 of the
English cell source it was translated from (``{"translation": {"source_sha256": "..."}}``). When
the English changes, the fingerprints no longer match and the cell is reported as *stale*; a
code cell whose program differs from the English one is reported as *code*.

The two notebooks are lined up by content (each cell by its fingerprint), so cells inserted,
deleted or moved in English are found wherever they land. ``--sync`` then rewrites the Chinese
notebook in the English order: translations that still match are kept, a translation of an
English cell that changed stays in place (stale, to be revised), a new English Markdown cell
arrives as a placeholder (the English text under a ``（待翻译）`` line), a new English code cell
as a copy of the English code (untranslated, unless it holds no comment and no string), and
cells English no longer has are dropped.
"""
from __future__ import annotations

import ast
import difflib
import functools
import hashlib
import io
import keyword
import re
import tokenize
from pathlib import Path
from typing import NamedTuple

import nbformat

from .handouts import NOTEBOOKS_DIR, course_notebooks

ZH_DIR = NOTEBOOKS_DIR / "zh-CN"
KEY = "translation"
PLACEHOLDER = "**（待翻译）** 以下为英文原文，请翻译后删除本行。\n\n"


class Finding(NamedTuple):
    """One cell of the Chinese edition that needs work, by its place in the English notebook."""
    notebook: str
    index: int | None  # the English cell's index; None for a cell English no longer has
    # "stale", "untranslated", "code", "tags", "extra", "missing notebook", "extra notebook"
    kind: str
    english: str  # the English source to translate from ("" for extra cells and notebooks)

    def line(self) -> str:
        where = f"{self.notebook} cell {self.index}" if self.index is not None else self.notebook
        first = self.english.strip().splitlines()[0][:70] if self.english.strip() else ""
        return f"{where}: {self.kind}" + (f"  | {first}" if first else "")


def fingerprint(source: str) -> str:
    """SHA-256 of a cell source (hex), what a translation records of the English it came from."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def translated_from(cell: nbformat.NotebookNode) -> str | None:
    """The fingerprint a Chinese cell records, or None for a placeholder or an untranslated copy."""
    return cell.get("metadata", {}).get(KEY, {}).get("source_sha256")


def _tags(cell: nbformat.NotebookNode) -> tuple[str, ...]:
    return tuple(cell.get("metadata", {}).get("tags", []))


def _key(cell: nbformat.NotebookNode, english: bool) -> tuple:
    """What must be equal for a Chinese cell to stand for an English one."""
    return (cell.cell_type, fingerprint(cell.source) if english else translated_from(cell))


# The program a code cell is, strings and comments aside ----------------------------------------

_LEFT_OUT = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # Python 3.12 and newer
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)


class _Blank(ast.NodeTransformer):
    """Every string constant emptied, so that an f-string field is compared as code only."""

    def visit_Constant(self, node):
        return ast.Constant("") if isinstance(node.value, str) else node

    def visit_JoinedStr(self, node):
        return ast.Constant("")


def _string_shape(text: str) -> tuple:
    """What a run of adjacent string literals adds to the program: nothing for plain strings; for
    an f-string, its fields (expression, conversion, format spec), in sorted order, since a
    translation may need them in another order."""
    node = ast.parse("(" + text + ")", mode="eval").body
    if not isinstance(node, ast.JoinedStr):
        return ("str",)
    fields = [(ast.dump(_Blank().visit(v.value)), v.conversion,
               ast.dump(v.format_spec) if v.format_spec else None)
              for v in node.values if isinstance(v, ast.FormattedValue)]
    return ("f-string", *sorted(fields))


def program(source: str) -> list[tuple]:
    """The tokens of a cell less comments and line breaks inside brackets, each run of adjacent
    string literals as one ``("STRING", fields)`` token, and parentheses that only wrap a string
    left out: what two editions of a cell must share."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    lines = source.splitlines(keepends=True)
    out, i = [], 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type in _LEFT_OUT:
            i += 1
        elif tok.type in (tokenize.STRING, _FSTRING_START):
            start = tok.start
            while i < len(tokens) and tokens[i].type in (tokenize.STRING, _FSTRING_START):
                if tokens[i].type == _FSTRING_START:  # 3.12+: an f-string is many tokens
                    depth = 0
                    while True:
                        depth += ((tokens[i].type == _FSTRING_START)
                                  - (tokens[i].type == _FSTRING_END))
                        i += 1
                        if depth == 0:
                            break
                else:
                    i += 1
                end = tokens[i - 1].end
                while i < len(tokens) and tokens[i].type in (tokenize.NL, tokenize.COMMENT):
                    i += 1
            text = "".join(lines[start[0] - 1:end[0]])
            text = text[start[1]:len(text) - len(lines[end[0] - 1]) + end[1]]
            out.append(("STRING", _string_shape(text)))
        else:
            out.append((tokenize.tok_name[tok.type], tok.string))
            i += 1
            if (len(out) >= 3 and out[-1] == ("OP", ")") and out[-2][0] == "STRING"
                    and out[-3] == ("OP", "(")):
                before = out[-4] if len(out) >= 4 else ("", "")
                called = before[1] in (")", "]") or before[0] == "STRING" or (
                    before[0] == "NAME" and not keyword.iskeyword(before[1]))
                if not called:
                    out[-3:] = [out[-2]]
    return out


def same_program(english: str, chinese: str) -> bool:
    """Whether two editions of a code cell are one program (``program``)."""
    return program(english) == program(chinese)


def needs_translation(source: str) -> bool:
    """Whether a code cell holds words to translate: a comment or a string literal."""
    return any(tok.type in (tokenize.COMMENT, tokenize.STRING, _FSTRING_START)
               for tok in tokenize.generate_tokens(io.StringIO(source).readline))


def align(en: list, zh: list) -> list[tuple[int | None, int | None]]:
    """Pairs (English index, Chinese index) lining up the two cell lists; None where one side has
    no cell.

    Cells that match by content pair first; between them, cells of the same type pair in order
    (a Markdown cell whose English changed pairs with its old translation).
    """
    matcher = difflib.SequenceMatcher(a=[_key(c, True) for c in en],
                                      b=[_key(c, False) for c in zh], autojunk=False)
    pairs = []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            pairs += zip(range(a0, a1), range(b0, b1))
            continue
        types = difflib.SequenceMatcher(a=[c.cell_type for c in en[a0:a1]],
                                        b=[c.cell_type for c in zh[b0:b1]], autojunk=False)
        for op2, i0, i1, j0, j1 in types.get_opcodes():
            if op2 == "equal":
                pairs += zip(range(a0 + i0, a0 + i1), range(b0 + j0, b0 + j1))
            else:
                pairs += ([(i, None) for i in range(a0 + i0, a0 + i1)]
                          + [(None, j) for j in range(b0 + j0, b0 + j1)])
    return pairs


def compare(en_nb: nbformat.NotebookNode, zh_nb: nbformat.NotebookNode, name: str) -> list[Finding]:
    """What in ``zh_nb`` does not match ``en_nb``: stale or untranslated cells, code that is not
    the English program, tags that differ, extra cells."""
    findings = []
    for i, j in align(en_nb.cells, zh_nb.cells):
        english = en_nb.cells[i] if i is not None else None
        if english is None:
            findings.append(Finding(name, None, "extra", ""))
        elif english.cell_type == "code" and j is not None and not same_program(
                english.source, zh_nb.cells[j].source):
            findings.append(Finding(name, i, "code", english.source))
        elif j is None or translated_from(zh_nb.cells[j]) is None:
            findings.append(Finding(name, i, "untranslated", english.source))
        elif translated_from(zh_nb.cells[j]) != fingerprint(english.source):
            findings.append(Finding(name, i, "stale", english.source))
        elif _tags(zh_nb.cells[j]) != _tags(english):
            findings.append(Finding(name, i, "tags", english.source))
    return findings


def synced(en_nb: nbformat.NotebookNode,
           zh_nb: nbformat.NotebookNode | None) -> nbformat.NotebookNode:
    """A Chinese notebook with the English one's cells, in its order: translations kept, new
    code copied, new Markdown as placeholders."""
    zh_cells = zh_nb.cells if zh_nb is not None else []
    cells = []
    for i, j in align(en_nb.cells, zh_cells):
        if i is None:
            continue  # English no longer has this cell
        english = nbformat.from_dict(en_nb.cells[i])  # a copy: id, metadata and tags from English
        if j is not None and "id" in zh_cells[j]:
            # stable: nbformat gives a cell read without an id a random one
            english.id = zh_cells[j].id
        if english.cell_type == "code":
            english.outputs, english.execution_count = [], None
        if j is not None:
            english.source = zh_cells[j].source
            english.metadata[KEY] = dict(zh_cells[j].metadata.get(KEY, {}))
        elif english.cell_type == "code":  # the English code, to translate where it has words
            done = None if needs_translation(english.source) else fingerprint(english.source)
            english.metadata[KEY] = {"source_sha256": done}
        else:
            english.source = PLACEHOLDER + english.source
            english.metadata[KEY] = {"source_sha256": None}
        cells.append(english)
    result = nbformat.from_dict(en_nb)
    result.cells = cells
    return result


def mark_translated(en_nb: nbformat.NotebookNode, zh_nb: nbformat.NotebookNode,
                    indices: list[int]) -> None:
    """Record that the cells at ``indices`` now translate the current English text; a code cell
    only where it is the English program."""
    if [c.cell_type for c in en_nb.cells] != [c.cell_type for c in zh_nb.cells]:
        raise ValueError("the notebooks' cells do not line up: "
                         "run `python -m captum_course translations --sync` first")
    for index in indices:
        if not 0 <= index < len(zh_nb.cells):
            raise ValueError(f"there is no cell {index}")
        cell = zh_nb.cells[index]
        if cell.cell_type == "code" and not same_program(en_nb.cells[index].source, cell.source):
            raise ValueError(f"cell {index} is not the English program: only the text of strings "
                             "and comments may differ")
        if PLACEHOLDER.strip() in cell.source:
            raise ValueError(f"cell {index} is still a placeholder: translate it and remove the "
                             "（待翻译） line")
        zh_nb.cells[index].metadata[KEY] = {"source_sha256": fingerprint(en_nb.cells[index].source)}


def pairs_of_notebooks(en_dir: Path = NOTEBOOKS_DIR,
                       zh_dir: Path = ZH_DIR) -> list[tuple[Path | None, Path | None]]:
    """(English path, Chinese path) for every notebook name either edition has; None where one
    lacks it."""
    en = {p.name: p for p in course_notebooks(en_dir)}
    zh = {p.name: p for p in Path(zh_dir).glob("*.ipynb")}
    return [(en.get(name), zh.get(name)) for name in sorted(en.keys() | zh.keys())]


def report(en_dir: Path = NOTEBOOKS_DIR, zh_dir: Path = ZH_DIR) -> list[Finding]:
    """Every finding, for every notebook of both editions."""
    findings = []
    for en_path, zh_path in pairs_of_notebooks(en_dir, zh_dir):
        if en_path is None:
            findings.append(Finding(zh_path.name, None, "extra notebook", ""))
        elif zh_path is None:
            findings.append(Finding(en_path.name, None, "missing notebook", ""))
        else:
            findings += compare(nbformat.read(en_path, as_version=4),
                                nbformat.read(zh_path, as_version=4), en_path.name)
    return findings


def sync(en_dir: Path = NOTEBOOKS_DIR, zh_dir: Path = ZH_DIR) -> list[Path]:
    """Rewrite every Chinese notebook to the English structure (a missing one starts as
    placeholders); return those changed.

    A Chinese notebook whose English one is gone is left alone (and reported as extra).
    """
    Path(zh_dir).mkdir(parents=True, exist_ok=True)
    changed = []
    for en_path, zh_path in pairs_of_notebooks(en_dir, zh_dir):
        if en_path is None:
            continue
        target = Path(zh_dir) / en_path.name
        old = nbformat.read(target, as_version=4) if zh_path else None
        new = synced(nbformat.read(en_path, as_version=4), old)
        if old is None or nbformat.writes(new) != nbformat.writes(old):
            nbformat.write(new, target)
            changed.append(target)
    return changed


def run(show: bool = False, do_sync: bool = False, done: list[str] | None = None,
        en_dir: Path = NOTEBOOKS_DIR, zh_dir: Path = ZH_DIR) -> int:
    """The command: sync or record translations if asked, then list what is left; exit status 1
    if anything is."""
    if do_sync:
        for path in sync(en_dir, zh_dir):
            print(f"synced {path}")
    if done:
        name = done[0] if done[0].endswith(".ipynb") else done[0] + ".ipynb"
        en_nb, zh_path = nbformat.read(Path(en_dir) / name, as_version=4), Path(zh_dir) / name
        zh_nb = nbformat.read(zh_path, as_version=4)
        mark_translated(en_nb, zh_nb, [int(i) for i in done[1:]])
        nbformat.write(zh_nb, zh_path)
        print(f"{zh_path}: cells {', '.join(done[1:])} recorded as translated")
    findings = report(en_dir, zh_dir)
    for finding in findings:
        print(finding.line())
        if show and finding.english:
            print("    " + finding.english.replace("\n", "\n    "))
    if not findings:
        print(f"{Path(zh_dir)}: every notebook matches the English edition, "
              "every translation is up to date")
    elif not do_sync and any(f.kind in {"code", "extra", "missing notebook", "tags"}
                             for f in findings):
        print("run `python -m captum_course translations --sync` to line up the cells; "
              "a `code` cell's program must be made the English one by hand")
    return 1 if findings else 0


# Words a printed English sentence or table header cannot do without; "a" and "I" are left out
# (variable names), the rest are at least two letters.
ENGLISH_WORDS = frozenset(
    "the of and is are was to in for with than not by on at from this that it its be as or an "
    "no yes per each every all none only more less most least mean spread sum score method "
    "pixels photo photos image images model class steps seconds passes off above below".split())
_WORD = r"[A-Za-z][A-Za-z'’-]*"


@functools.lru_cache(maxsize=8)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern:
    longest_first = sorted(set(names), key=len, reverse=True)
    return re.compile(r"(?<![A-Za-z])(?:" + "|".join(map(re.escape, longest_first))
                      + r")(?![A-Za-z])")


def english_sentences(text: str, names: tuple[str, ...] = ()) -> list[str]:
    """The English phrases in ``text``: three English words in a row, or a single common English
    word (``ENGLISH_WORDS``), once ``names`` (class, method and model names, which may stay as
    they are) are taken out. Code-like tokens (``a.b``, ``a_b``, ``a=b``) are not words."""
    if names:
        text = _names_pattern(tuple(names)).sub(" ", text)
    text = re.sub(r"`[^`]*`", " ", text)  # code spans
    text = re.sub(r"\S*[._=/\\@#<>{}\[\]()]\S*", " ", text)  # identifiers, paths, calls, URLs
    found = re.findall(rf"(?<![A-Za-z_]){_WORD}(?: {_WORD}){{2,}}(?![A-Za-z_])", text)
    found += [w for w in re.findall(rf"(?<![A-Za-z_]){_WORD}(?![A-Za-z_])", text)
              if w.lower() in ENGLISH_WORDS and not any(w in f for f in found)]
    return found
