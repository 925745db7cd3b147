"""Sphinx settings of the course website, for both editions: `make site` (captum_course/site.py)
stages each edition's pages and builds it with these settings and $COURSE_EDITION ("en" or
"zh-CN"). The repository and the hub the launch buttons open are `make site` settings
(REPOSITORY, BRANCH, JUPYTERHUB_URL, BINDERHUB_URL; docs/site.md)."""
import json
import os

edition = os.environ.get("COURSE_EDITION", "en")
site = json.loads(os.environ.get("COURSE_SITE", "{}"))  # what captum_course/site.py passes on
chinese = edition == "zh-CN"

project = "使用 Captum 理解模型" if chinese else "Model understanding with Captum"
author = "the course's authors" if not chinese else "课程作者"
copyright = "2026"
language = "zh_CN" if chinese else "en"
html_search_language = "zh" if chinese else "en"  # jieba segments Chinese words for the index
# the glossary's terms as whole words (captum_course/site.py)
if chinese and site.get("search_words"):
    html_search_options = {"dict": site["search_words"]}
# No page has mathematics: Sphinx adds MathJax, from a CDN, only to a page that has some, and
# tests/run_site.py fails on any page that asks another host for anything.
extensions = ["myst_nb"]
nb_execution_mode = "off"  # the pages show the outputs of the run make site did before
# a table a cell displays as Markdown (notebook 06) renders as a table, as in JupyterLab
nb_render_markdown_format = "myst"
nb_ipywidgets_js = {}  # widgets are turned into text or a picture: no script from a CDN
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3  # the guides link to each other's sections, as GitHub names them
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
templates_path = [os.path.join(os.path.dirname(__file__), "_templates")]
html_static_path = [os.path.join(os.path.dirname(__file__), "_static")]
html_css_files = ["course.css"]
html_theme = "sphinx_book_theme"
html_title = project
html_last_updated_fmt = ""
html_show_sourcelink = False
html_context = {"edition": edition, "other_pages": site.get("other_pages", []),
                "default_mode": "auto", "other": "English" if chinese else "中文"}
html_theme_options = {
    "repository_url": site.get("repository", ""),
    "repository_branch": site.get("branch", "main"),
    "path_to_docs": "notebooks/zh-CN" if chinese else "notebooks",
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {
        "binderhub_url": site.get("binderhub_url", "https://mybinder.org"),
        "jupyterhub_url": site.get("jupyterhub_url", ""),
        "colab_url": "https://colab.research.google.com",
        "notebook_interface": "jupyterlab",
    },
    "article_header_end": ["language-switch.html", "article-header-buttons.html"],
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
}


def _chinese_search_with_its_stemmer():
    """Sphinx 9.0's Chinese search stems Latin words with the English stemmer it ships, but names
    the stemmer after the language ("window.Stemmer = ChineseStemmer"), which no script defines:
    every Chinese page then fails on load and its search finds nothing. Name it as shipped."""
    from sphinx.search import languages
    from sphinx.search.zh import SearchChinese

    class ChineseSearch(SearchChinese):
        language_name = "English"  # used for that line only

    languages["zh"] = ChineseSearch


if chinese:
    _chinese_search_with_its_stemmer()
html_show_search_summary = False  # summaries fetch each page, which a browser refuses from file://
