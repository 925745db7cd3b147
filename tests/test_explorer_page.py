"""Notebook 05's explorer on the website (captum_course/explorer_page.py), the parts that need no
model and no browser: each edition's words, the size limit, the page's script kept whole.
tests/run_site.py (make test-site) computes the real results and presses Fetch in Chromium."""
import json
import re

import pytest

from captum_course import explorer_page

DATA = {"model": "efficientnet_lite0", "config": {"classes": ["a", "b"]},
        "photos": [{"base": "data:image/jpeg;base64,AA==", "actual": None, "predicted": []}],
        "maps": {"Saliency": {"arguments": {}, "images": [["x"]], "contributions": [[1.0]]},
                 "Feature Ablation": {"error": {"en": "too many passes", "zh": "次数太多"}}}}


@pytest.mark.parametrize("language, refusal", [("en", "too many passes"), ("zh", "次数太多")])
def test_each_edition_gets_its_note_and_the_refusals_in_its_language(language, refusal):
    page = explorer_page.page_data(DATA, language, "EfficientNet-Lite0")
    assert page["maps"]["Feature Ablation"] == {"error": refusal}
    assert page["maps"]["Saliency"] == DATA["maps"]["Saliency"]
    assert "EfficientNet-Lite0" in page["note"] and page["language"] == language
    assert page["feature"] == {"en": "Photo", "zh": "照片"}[language]  # as notebook 05 names it
    assert page["note"] == explorer_page.NOTE[language].format(model="EfficientNet-Lite0")


def test_the_pages_html_holds_the_data_and_the_script_whole():
    """A "</script>" in the data or the front end would end the script early."""
    data = {"note": "</script><b>not markup</b>"}
    front_end = 'export function mountStatic() {}\nconst s = "</script>";\n'
    page = explorer_page.html(data, front_end)
    assert page.count("</script>") == 2  # the data's and the module's own ends
    payload = re.search(r'class="captum-explorer-data">(.*?)</script>', page, re.S).group(1)
    assert json.loads(payload) == data
    assert 'const s = "<\\/script>"' in page and "mountStatic(el, data)" in page


def test_results_over_the_limit_are_refused(monkeypatch):
    monkeypatch.setattr(explorer_page, "MAX_BYTES", 100)
    with pytest.raises(RuntimeError, match="more than 100"):
        explorer_page.html({"note": "x" * 200}, "")
    explorer_page.html({"note": "x" * 10}, "")  # under it: no error


def test_kept_results_are_reused_and_a_change_of_model_computes_again(tmp_path, monkeypatch):
    computed = []
    monkeypatch.setattr(explorer_page, "compute",
                        lambda model: computed.append(model) or {"model": model})
    assert explorer_page.results("efficientnet_lite0", tmp_path) == {"model": "efficientnet_lite0"}
    assert explorer_page.results("efficientnet_lite0", tmp_path) == {"model": "efficientnet_lite0"}
    assert computed == ["efficientnet_lite0"]
    explorer_page.results("resnet18", tmp_path)
    assert computed == ["efficientnet_lite0", "resnet18"]
