"""The Chinese edition (notebooks/zh-CN/) against the English one, and the command that keeps
them in step."""
import ast
import io
import json
import os
import re
import tokenize
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from captum_course.__main__ import main
from captum_course.handouts import course_notebooks
from captum_course.translations import (PLACEHOLDER, english_sentences, fingerprint, run,
                                         same_program, sync, translated_from)
from run_chinese_edition import NAMES

ROOT = Path(__file__).resolve().parent.parent
EN_DIR, ZH_DIR = ROOT / "notebooks", ROOT / "notebooks" / "zh-CN"
ENGLISH = course_notebooks(EN_DIR)
CJK = re.compile(r"[\u4e00-\u9fff]")


def _read(path):
    return nbformat.read(path, as_version=4)


def _headings(nb):
    """The level of every Markdown heading of a notebook, in order (``#`` lines outside code
    blocks)."""
    levels = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            text = re.sub(r"^```.*?^```", "", cell.source, flags=re.MULTILINE | re.DOTALL)
            levels += [len(m.group(1)) for m in re.finditer(r"^(#{1,6})\s", text, re.MULTILINE)]
    return levels


def test_both_editions_have_the_same_notebooks():
    assert [p.name for p in ENGLISH] == sorted(p.name for p in ZH_DIR.glob("*.ipynb"))


@pytest.fixture(params=ENGLISH, ids=lambda p: p.stem)
def editions(request):
    return _read(request.param), _read(ZH_DIR / request.param.name)


def test_same_cells_in_the_same_order(editions):
    en, zh = editions
    assert [c.cell_type for c in zh.cells] == [c.cell_type for c in en.cells]
    assert ([c.metadata.get("tags", []) for c in zh.cells]
            == [c.metadata.get("tags", []) for c in en.cells])


def test_code_cells_are_the_english_program(editions):
    """Token for token, once the text of strings and comments is set aside (tags: above)."""
    en, zh = editions
    differ = [i for i, (e, z) in enumerate(zip(en.cells, zh.cells))
              if e.cell_type == "code" and not same_program(e.source, z.source)]
    assert not differ, f"code cells {differ} are not the English program"


def _code(nb):
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def test_no_notebook_calls_say(editions):
    for nb in editions:
        calls = [i for i, source in _code(nb) if re.search(r"\bsay\(", source)]
        assert not calls, f"code cells {calls} call say(): each edition writes its own words"


def test_the_english_code_holds_no_chinese(editions):
    en, _ = editions
    chinese = [(i, CJK.findall(source)[:5]) for i, source in _code(en) if CJK.search(source)]
    assert not chinese, f"Chinese in the English code cells: {chinese}"


def _keys(sources):
    """Strings the code uses as data names: dict keys, subscripts and strings compared."""
    keys = set()
    for node in (n for source in sources for n in ast.walk(ast.parse(source))):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            keys.add(node.slice.value)
        elif isinstance(node, ast.Dict):
            keys |= {k.value for k in node.keys if isinstance(k, ast.Constant)}
        elif isinstance(node, ast.Compare):
            keys |= {c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)}
    return keys


def _words(source, keys=frozenset()):
    """The words a reader sees in a code cell: comments, and the text of string literals, less
    data names (``keys``, and the cell's own) and single identifiers ("all", "mean")."""
    found = [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline)
             if t.type == tokenize.COMMENT]
    tree = ast.parse(source)
    keys = set(keys) | _keys([source])
    parts = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
             for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            found += [v.value for v in node.values if isinstance(v, ast.Constant)]
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in parts):
            if node.value not in keys and not re.fullmatch(r"[A-Za-z_][\w.]*", node.value):
                found.append(node.value)
    return found


def test_the_chinese_code_speaks_chinese(editions):
    """Comments, printed sentences, titles, labels and headers: names of methods, models and
    classes aside (what make test-chinese allows in the outputs), no English."""
    _, zh = editions
    keys = _keys(source for _, source in _code(zh))
    english = [(i, text[:60]) for i, source in _code(zh) for text in _words(source, keys)
               if english_sentences(text, NAMES)]
    assert not english, f"English in the Chinese code cells (cell, text): {english}"


def test_the_checks_of_the_code_can_fail():
    english = 'x = f"{n:.2f} cats in the photo"  # count them all\nprint(x, "done")'
    assert same_program(english, 'x = (f"照片里有 {n:.2f} "\n     "只猫")  # 全数\n'
                                 'print(x, "完成")')
    assert not same_program(english, english.replace("x, ", "x + "))  # the code
    assert not same_program(english, english.replace(":.2f", ":.3f"))  # a format spec
    assert not same_program(english, english.replace("{n", "{m"))  # a field
    assert not same_program(english, english.replace('"done"', 'str("done")'))
    found = [text for text in _words(english) if english_sentences(text, NAMES)]
    assert found == ["# count them all", " cats in the photo"]
    assert _words('d = {"deletion, zero fill": 1}\nd["deletion, zero fill"]') == []


def test_same_headings(editions):
    en, zh = editions
    assert _headings(zh) == _headings(en)


def test_every_markdown_cell_is_in_chinese(editions):
    _, zh = editions
    english_only = [i for i, c in enumerate(zh.cells)
                    if c.cell_type == "markdown" and not CJK.search(c.source)]
    assert not english_only, f"Markdown cells {english_only} contain no Chinese"
    placeholders = [i for i, c in enumerate(zh.cells) if PLACEHOLDER.strip() in c.source]
    assert not placeholders, f"cells {placeholders} are still placeholders"


def test_translations_are_up_to_date(capsys):
    """Every Markdown cell records the English it translates, and that is the English of today."""
    status = main(["translations"])
    assert status == 0, capsys.readouterr().out


def test_the_chinese_notebooks_find_the_photos_with_the_same_paths():
    link = EN_DIR / "img"
    assert link.is_symlink() and os.readlink(link) == "../img"  # relative: works in every clone
    assert (ZH_DIR / "../img/chelsea.png").resolve() == (EN_DIR / "../img/chelsea.png").resolve()


# The command, on small notebooks made here ---------------------------------------------------

def _english():
    code = new_code_cell("cats = 3\ncats")
    code.metadata["tags"] = ["exercise"]
    return new_notebook(cells=[new_markdown_cell("# Counting cats"), code,
                               new_markdown_cell("Three cats."), new_code_cell("2 * cats")])


@pytest.fixture
def course(tmp_path):
    en_dir, zh_dir = tmp_path / "notebooks", tmp_path / "notebooks" / "zh-CN"
    en_dir.mkdir()
    nbformat.write(_english(), en_dir / "01_cats.ipynb")
    return en_dir, zh_dir


def _translate(course, name, texts):
    """Write ``texts`` ({index: Chinese}) into the Chinese notebook and record them as
    translated."""
    en_dir, zh_dir = course
    nb = _read(zh_dir / name)
    for index, text in texts.items():
        nb.cells[index].source = text
    nbformat.write(nb, zh_dir / name)
    assert run(done=[name.removesuffix(".ipynb"), *map(str, texts)],
               en_dir=en_dir, zh_dir=zh_dir) == 0


def _edit_english(course, change):
    nb = _read(course[0] / "01_cats.ipynb")
    change(nb.cells)
    nbformat.write(nb, course[0] / "01_cats.ipynb")


def test_sync_starts_a_missing_notebook_with_code_and_placeholders(course, capsys):
    en_dir, zh_dir = course
    assert run(en_dir=en_dir, zh_dir=zh_dir) == 1
    assert "01_cats.ipynb: missing notebook" in capsys.readouterr().out

    # synced, but nothing translated yet
    assert run(do_sync=True, en_dir=en_dir, zh_dir=zh_dir) == 1
    out = capsys.readouterr().out
    assert "01_cats.ipynb cell 0: untranslated  | # Counting cats" in out
    assert "01_cats.ipynb cell 2: untranslated  | Three cats." in out
    zh = _read(zh_dir / "01_cats.ipynb")
    assert [c.source for c in zh.cells if c.cell_type == "code"] == ["cats = 3\ncats", "2 * cats"]
    assert zh.cells[1].metadata["tags"] == ["exercise"]
    assert zh.cells[2].source == PLACEHOLDER + "Three cats."
    assert translated_from(zh.cells[2]) is None


def test_done_records_the_english_and_the_report_comes_clean(course, capsys):
    en_dir, zh_dir = course
    run(do_sync=True, en_dir=en_dir, zh_dir=zh_dir)
    _translate(course, "01_cats.ipynb", {0: "# 数猫", 2: "三只猫。"})
    assert "every translation is up to date" in capsys.readouterr().out
    assert translated_from(_read(zh_dir / "01_cats.ipynb").cells[2]) == fingerprint("Three cats.")


def test_changed_english_makes_the_translation_stale_and_sync_keeps_it(course, capsys):
    en_dir, zh_dir = course
    run(do_sync=True, en_dir=en_dir, zh_dir=zh_dir)
    _translate(course, "01_cats.ipynb", {0: "# 数猫", 2: "三只猫。"})
    _edit_english(course, lambda cells: setattr(cells[2], "source", "Three cats, all asleep."))
    capsys.readouterr()

    assert run(do_sync=True, en_dir=en_dir, zh_dir=zh_dir) == 1
    assert capsys.readouterr().out.splitlines() == [
        "01_cats.ipynb cell 2: stale  | Three cats, all asleep."]
    assert _read(zh_dir / "01_cats.ipynb").cells[2].source == "三只猫。"  # kept, to be revised
    _translate(course, "01_cats.ipynb", {2: "三只猫，都睡着了。"})


def test_sync_follows_inserted_moved_and_deleted_cells(course, capsys):
    en_dir, zh_dir = course
    run(do_sync=True, en_dir=en_dir, zh_dir=zh_dir)
    _translate(course, "01_cats.ipynb", {0: "# 数猫", 2: "三只猫。"})

    def rework(cells):
        cells[2], cells[3] = cells[3], cells[2]  # the sentence now follows the last code cell
        cells.insert(1, new_markdown_cell("Why count cats?"))
        cells.insert(2, new_code_cell("dogs = 0"))
        cells[4].source = "cats * 2"  # was "2 * cats"
    _edit_english(course, rework)
    capsys.readouterr()

    assert run(en_dir=en_dir, zh_dir=zh_dir) == 1
    report = capsys.readouterr().out
    assert "cell 1: untranslated  | Why count cats?" in report
    assert "cell 2: untranslated  | dogs = 0" in report  # not in the Chinese notebook yet

    run(do_sync=True, en_dir=en_dir, zh_dir=zh_dir)
    zh, en = _read(zh_dir / "01_cats.ipynb"), _read(en_dir / "01_cats.ipynb")
    assert [c.source for c in zh.cells] == ["# 数猫", PLACEHOLDER + "Why count cats?", "dogs = 0",
                                            "cats = 3\ncats", "cats * 2", "三只猫。"]
    assert [c.metadata.get("tags") for c in zh.cells] == [c.metadata.get("tags") for c in en.cells]
    # the new code cells hold no words to translate: copied, and translated as they are
    assert (capsys.readouterr().out.splitlines()[-1]
            == "01_cats.ipynb cell 1: untranslated  | Why count cats?")

    _edit_english(course, lambda cells: cells.pop(5))  # "Three cats." goes
    run(do_sync=True, en_dir=en_dir, zh_dir=zh_dir)
    assert "三只猫。" not in [c.source for c in _read(zh_dir / "01_cats.ipynb").cells]


def test_done_refuses_placeholders_and_unsynced_notebooks(course):
    en_dir, zh_dir = course
    run(do_sync=True, en_dir=en_dir, zh_dir=zh_dir)
    with pytest.raises(ValueError, match="still a placeholder"):
        run(done=["01_cats", "2"], en_dir=en_dir, zh_dir=zh_dir)
    with pytest.raises(ValueError, match="there is no cell"):
        run(done=["01_cats", "9"], en_dir=en_dir, zh_dir=zh_dir)
    _edit_english(course, lambda cells: cells.insert(0, new_markdown_cell("Hello")))
    with pytest.raises(ValueError, match="do not line up"):
        run(done=["01_cats", "3"], en_dir=en_dir, zh_dir=zh_dir)


def test_a_code_cell_with_words_is_translated_in_place_and_goes_stale(course, capsys):
    en_dir, zh_dir = course
    _edit_english(course, lambda cells: cells.append(new_code_cell('print(f"{cats} cats")  # all')))
    run(do_sync=True, en_dir=en_dir, zh_dir=zh_dir)
    assert "cell 4: untranslated  | print(" in capsys.readouterr().out
    chinese = _read(zh_dir / "01_cats.ipynb")
    chinese.cells[4].source = 'print(f"{cats} 只猫", end="")  # 全部'  # not the same program
    nbformat.write(chinese, zh_dir / "01_cats.ipynb")
    with pytest.raises(ValueError, match="not the English program"):
        run(done=["01_cats", "4"], en_dir=en_dir, zh_dir=zh_dir)
    _translate(course, "01_cats.ipynb",
               {0: "# 数猫", 2: "三只猫。", 4: 'print(f"{cats} 只猫")  # 全部'})
    _edit_english(course, lambda cells: setattr(cells[4], "source",
                                                'print(f"{cats} cats!")  # all'))
    capsys.readouterr()
    assert run(do_sync=True, en_dir=en_dir, zh_dir=zh_dir) == 1
    assert capsys.readouterr().out.splitlines() == [
        '01_cats.ipynb cell 4: stale  | print(f"{cats} cats!")  # all']
    assert _read(zh_dir / "01_cats.ipynb").cells[4].source == 'print(f"{cats} 只猫")  # 全部'


def test_synced_notebooks_are_stored_without_outputs(course):
    en_dir, zh_dir = course
    _edit_english(course, lambda cells: cells[3].update(execution_count=4, outputs=[
        nbformat.v4.new_output("execute_result", {"text/plain": "6"}, execution_count=4)]))
    run(do_sync=True, en_dir=en_dir, zh_dir=zh_dir)
    stored = json.loads((zh_dir / "01_cats.ipynb").read_text(encoding="utf-8"))["cells"][3]
    assert stored["outputs"] == [] and stored["execution_count"] is None


def test_a_chinese_notebook_without_english_is_reported(course, capsys):
    en_dir, zh_dir = course
    run(do_sync=True, en_dir=en_dir, zh_dir=zh_dir)
    nbformat.write(new_notebook(cells=[new_markdown_cell("# 旧笔记本")]), zh_dir / "00_old.ipynb")
    capsys.readouterr()
    assert run(en_dir=en_dir, zh_dir=zh_dir) == 1
    assert "00_old.ipynb: extra notebook" in capsys.readouterr().out


def test_jupyterlab_offers_the_chinese_interface_the_notebooks_speak_of():
    """Settings → Language lists 中文 (the zh extra), and the menu names the Chinese notebooks
    quote are its own."""
    from jupyterlab_server.translation_utils import get_language_pack, get_language_packs

    languages, _ = get_language_packs("en")
    assert languages["zh_CN"]["nativeName"].startswith("中文")
    menus = get_language_pack("zh_CN")[0]["jupyterlab"]
    # chr(4): gettext's context mark
    run_all = f"*{menus['menu' + chr(4) + 'Run'][0]} → {menus['Run All Cells'][0]}*"
    introduction = "".join(c.source for c in _read(ZH_DIR / "00_introduction.ipynb").cells)
    assert run_all in introduction


def _glossary_rows():
    """The glossary's rows (docs/translation.zh-CN.md): (English, the course's term, avoided
    terms)."""
    text = ((ROOT / "docs" / "translation.zh-CN.md").read_text(encoding="utf-8")
            .split("## 术语表", 1)[1])
    rows = [line.split("|")[1:-1] for line in text.splitlines()
            if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in row] for row in rows[1:]]


def _avoided_terms():
    """The third column of the glossary: translations this course does not use."""
    return {term.strip(): row[0] for row in _glossary_rows()
            for term in row[2].split("、") if term.strip()}


def _required_terms():
    """(English term, the course's Chinese term) for every pair of the glossary's first two columns
    ("A / B" beside "甲 / 乙"), less a note in brackets; "cell", "kernel" and "spread" left out,
    since they also mean a cell of a map's grid (格子), a convolution's kernel (卷积核) and a
    verb."""
    pairs = []
    for english, chinese, _ in _glossary_rows():
        for en, zh in zip(english.split(" / "), chinese.split(" / "), strict=True):
            if en not in ("cell", "kernel", "spread"):
                pairs.append((en.strip(), re.sub(r"（.*?）", "", zh).strip()))
    return pairs


def _prose(markdown):
    """What a Markdown cell says in words: code spans and italic titles (papers) left out."""
    return re.sub(r"`[^`]*`|(?<!\*)\*(?=\S)[^*]+?(?<=\S)\*(?!\*)", " ", markdown)


def _off_glossary(en_cells, zh_cells):
    """(cell, English term, required term) where an English Markdown cell names a glossary concept
    and its Chinese cell does not use the course's term (a proper name may also stay in English)."""
    missing = []
    for i, (en, zh) in enumerate(zip(en_cells, zh_cells)):
        if en.cell_type != "markdown":
            continue
        for term, chinese in _required_terms():
            named = re.search(rf"(?<![A-Za-z]){re.escape(term)}s?(?![A-Za-z])", _prose(en.source),
                              re.IGNORECASE)
            kept = term[0].isupper() and term in zh.source
            if named and chinese not in zh.source and not kept:
                missing.append((i, term, chinese))
    return missing


def test_the_glossary_holds_the_chinese_edition_to_one_term_each():
    avoided = _avoided_terms()
    assert avoided["积分梯度"] == "Integrated Gradients"  # the table was read
    found = [(path.name, i, term) for path in ZH_DIR.glob("*.ipynb")
             for i, cell in enumerate(_read(path).cells)
             for term in avoided if term in cell.source]
    assert not found, f"the glossary says to write these otherwise (notebook, cell, term): {found}"


def test_the_chinese_edition_uses_the_glossarys_terms(editions):
    en, zh = editions
    missing = _off_glossary(en.cells, zh.cells)
    assert not missing, f"the glossary's term is missing (cell, English, Chinese): {missing}"


def test_the_glossary_check_finds_a_drifted_term():
    assert ("sanity check", "合理性检验") in _required_terms()
    english = [new_markdown_cell("A **sanity check** of the map, as in "
                                 "*Sanity Checks for Saliency Maps*.")]
    assert _off_glossary(english, [new_markdown_cell("对图做一次**健全性检查**。")]) == [
        (0, "sanity check", "合理性检验")]
    assert _off_glossary(english, [new_markdown_cell("对图做一次**合理性检验**。")]) == []
    titles_only = [new_markdown_cell("See *Sanity Checks for Saliency Maps* and `sanity_check()`.")]
    assert _off_glossary(titles_only, [new_markdown_cell("见论文。")]) == []


def _heading_and_footer(path):
    nb = _read(path)
    summary = [line for cell in nb.cells if cell.cell_type == "markdown"
               for line in cell.source.splitlines()
               if line in ("## What you learned", "## 本节小结")]
    return summary, nb.cells[-1].source


@pytest.mark.parametrize("folder", [EN_DIR, ZH_DIR], ids=["en", "zh-CN"])
def test_every_notebook_has_one_summary_heading_and_the_same_footer(folder):
    found = {path.name: _heading_and_footer(path) for path in course_notebooks(folder)}
    assert ({name: len(summary) for name, (summary, _) in found.items()}
            == {name: 1 for name in found})
    footers = {footer for _, footer in found.values()}
    assert len(footers) == 1, f"{len(footers)} different last cells"


def test_a_second_sync_changes_nothing_even_for_cells_without_ids(course):
    en_dir, zh_dir = course
    raw = json.loads((en_dir / "01_cats.ipynb").read_text(encoding="utf-8"))
    for cell in raw["cells"]:
        del cell["id"]  # as an older editor writes them; nbformat makes up random ids on reading
    (en_dir / "01_cats.ipynb").write_text(json.dumps(raw), encoding="utf-8")
    assert sync(en_dir, zh_dir) == [zh_dir / "01_cats.ipynb"]
    assert sync(en_dir, zh_dir) == []
