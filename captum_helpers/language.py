"""The language of the helper package's own words: English, or Chinese for the Chinese edition.

Each edition's notebooks write their own words in their code cells. What the package says itself
(its errors, ``load_model``'s line, the progress bar, the Insights explorer's statuses) follows
the edition the kernel runs for, through ``say(english, chinese)``:

* ``$CAPTUM_COURSE_LANGUAGE`` (``en`` or ``zh``) when it is set (Colab, or any place where the
  kernel does not start in the notebook's folder);
* otherwise ``zh`` when the kernel's working folder is ``.../zh-CN/`` (Jupyter, VS Code and
  nbclient start a notebook's kernel in the notebook's folder), ``en`` elsewhere.

For Chinese, matplotlib gets a CJK font (Noto Sans CJK SC from the ``mplfonts`` wheel) behind
its default one, so Chinese titles and labels render without a system font: importing
``captum_helpers`` in the Chinese edition sets it up, as ``say`` does.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

LANGUAGE_ENV = "CAPTUM_COURSE_LANGUAGE"
LANGUAGES = ("en", "zh")
CHINESE_FOLDER = "zh-CN"
CJK_FONT = "Noto Sans CJK SC"


def language() -> str:
    """``"zh"`` for the Chinese edition, ``"en"`` otherwise (see the module's docstring)."""
    chosen = os.environ.get(LANGUAGE_ENV, "").strip().lower()
    if chosen:
        if chosen not in LANGUAGES:
            raise ValueError(f"${LANGUAGE_ENV} is {chosen!r}: choose one of {', '.join(LANGUAGES)}")
        return chosen
    return "zh" if CHINESE_FOLDER in Path.cwd().parts else "en"


def say(english: str, chinese: str, lang: str | None = None) -> str:
    """The text for this edition: ``english``, or ``chinese`` in the Chinese edition. ``lang``
    (``"en"`` or ``"zh"``) fixes the language instead, for an object that keeps the edition it
    was made in (the Insights explorer and widget)."""
    if (lang or language()) == "zh":
        use_chinese_font()
        return chinese
    return english


@lru_cache(maxsize=1)
def use_chinese_font() -> bool:
    """Put a CJK font behind matplotlib's sans-serif default; False when none is installed."""
    try:
        from importlib.resources import files

        import matplotlib
        from matplotlib import font_manager
    except ImportError:
        return False
    try:
        font = files("mplfonts") / "fonts" / "NotoSansCJKsc-Regular.otf"
    except ModuleNotFoundError:
        return False
    if not font.is_file():
        return False
    font_manager.fontManager.addfont(str(font))
    # matplotlib falls back glyph by glyph along font.family: Latin from the default font, the
    # rest from the CJK one
    families = [f for f in matplotlib.rcParams["font.family"] if f != CJK_FONT]
    matplotlib.rcParams["font.family"] = families + [CJK_FONT]
    return True
