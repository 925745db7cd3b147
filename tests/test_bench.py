"""bench/attributions.py: its report from given numbers, and one real smoke run end to end; and
bench/notebook_times.py on a tiny course."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_attributions",
                                               ROOT / "bench" / "attributions.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def row(times, peak_mb, rel_diff=None, before_mb=800.0, load=1.5):
    r = {"times": times, "peak_mb": peak_mb, "before_mb": before_mb, "load": load}
    if rel_diff is not None:
        r["compare"] = {"max_diff": rel_diff * 3e-3, "rel_diff": rel_diff, "rank_corr": 0.9998}
    return r


@pytest.fixture
def results():
    return {
        ("ig", "baseline"): row([15.0, 16.0, 14.0], 5120.0),
        ("ig", "suite"): row([10.0, 9.5, 10.5], 1100.0, rel_diff=2e-4),
        ("occlusion", "baseline"): row([22.0, 21.0, 24.0], 810.0),
        ("occlusion", "suite"): row([16.0, 16.2, 15.9], 1250.0, rel_diff=2e-3),  # disagrees
        ("gradcam", "baseline"): row([0.04] * 5, 828.0),
        ("gradcam", "suite"): row([0.05] * 5, 828.0, rel_diff=7.7e-7),
        ("rate", "suite"): row([0.03, 0.025, 0.02, 0.022], 900.0),  # seconds per image
    }


def test_table_from_given_numbers(results):
    lines = bench.table(results, list(bench.METHODS), ["baseline", "suite"])
    assert lines[0].startswith("| method | variant | runs | time: median (min-max) | peak RSS "
                               "| before call |")
    assert len(lines) == 2 + 6 + 1 and all(len(line.split("|")) == 13 + 2 for line in lines[2:])
    assert lines[2] == ("| Integrated Gradients | baseline | 3 | 15.0 s (14.0-16.0 s) | 5.00 GB "
                        "| 800 MB | 1.00x | 1.00x |  |  |  |  | 1.5 |")
    assert lines[3] == ("| Integrated Gradients | suite | 3 | 10.0 s (9.50-10.5 s) | 1.07 GB "
                        "| 800 MB | 1.50x | 4.65x | 6.0e-07 | 2.0e-04 | 0.9998 | yes | 1.5 |")
    assert lines[5].startswith("| Occlusion | suite | 3 | 16.0 s (15.9-16.2 s) | 1.22 GB | 800 MB "
                               "| 1.38x | 0.65x |")
    assert lines[5].endswith("| NO (> 0.001) | 1.5 |")
    assert lines[7].startswith("| Layer GradCAM | suite | 5 | 0.05 s (0.05-0.05 s) | 828 MB "
                               "| 800 MB | 0.80x |")
    assert lines[8].startswith("| all three | baseline / suite | | 37.0 s / 26.1 s | | | 1.42x |")


def test_targets_pass_with_the_bound_they_compared(results):
    lines = bench.targets(results, windows=784)
    assert lines[:2] == ["targets:", ""] and len(lines) == 6
    # bound: 784 passes x 20 ms (the best rate given) = 15.7 s; 16.0 s is 1.02x of it
    assert lines[2] == ("- PASS: Occlusion within 1.1x of the float32 bound: 16.0 s = 1.02x the "
                        "bound 15.7 s (784 occluded forward passes at 20.0 ms/image, the best "
                        "batched rate in this run)")
    assert lines[3] == "- PASS: Integrated Gradients peak RSS at most 1.5 GB: 1.07 GB"
    assert lines[4] == "- PASS: Integrated Gradients not slower than the walkthrough's: 1.50x"
    assert lines[5] == ("- PASS: the three together faster than the walkthrough's: "
                        "37.0 s / 26.1 s = 1.42x")


def test_targets_missed(results):
    results["occlusion", "suite"]["times"] = [18.0]  # 1.15x the 15.7 s bound
    results["ig", "suite"].update(times=[17.0], peak_mb=1600.0)
    results["gradcam", "suite"]["times"] = [30.0]
    lines = bench.targets(results, windows=784)
    assert [line.split(":")[0] for line in lines[2:]] == ["- MISSED"] * 4
    assert "18.0 s = 1.15x the bound 15.7 s" in lines[2]
    assert lines[3].endswith("1.56 GB") and lines[4].endswith("0.88x")
    assert lines[5].endswith("37.0 s / 65.0 s = 0.57x")


@pytest.mark.once
def test_quick_smoke_run_writes_the_report(tmp_path):
    report = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "attributions.py"), "--quick", "--size", "32",
         "--n-steps", "8", "--markdown", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = report.read_text()
    assert text in proc.stdout
    assert text.startswith("`python bench/attributions.py --quick --size 32 --n-steps 8 "
                           "--markdown ")
    assert f"Occlusion `perturbations_per_eval={bench.OCCLUSION_BATCH}`" in text
    for name in bench.METHODS.values():  # the suite agrees with the walkthrough's call
        assert re.search(rf"^\| {name} \| baseline \| \d+ \| [\d.]+ s.* \| 1\.00x \| 1\.00x \|",
                         text, re.M), name
        assert re.search(rf"^\| {name} \| suite \| \d+ \| .* \| [\d.]+x \| [\d.]+x \| .* \| yes "
                         r"\| [\d.]+ \|$", text, re.M), name
    assert re.search(r"^\| all three \| baseline / suite \| \| [\d.]+ s / [\d.]+ s \| \| \| "
                     r"[\d.]+x \|", text, re.M)
    assert "smoke run (--quick)" in text and "PASS" not in text


@pytest.mark.once
def test_notebook_times_prints_seconds_model_and_memory_per_notebook(tiny_course):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "notebook_times.py"),
                           str(tiny_course / "01_answer.ipynb"),
                           str(tiny_course / "02_broken.ipynb")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # 02_broken fails
    out = proc.stdout
    assert "| notebook | model | seconds | kernel peak memory | status |" in out
    assert re.search(r"\| 01_answer \| tiny \| \d+ \| \d+\.\d GB \| ok \|", out), out
    assert re.search(r"\| 02_broken \| - \| \d+ \| - \| FAILED: ZeroDivisionError: division by "
                     r"zero \|", out), out
    assert re.search(r"\| \*\*total\*\* \| \| \*\*\d+\*\* \|", out), out


@pytest.mark.once
def test_occlusion_bench_compares_the_two_ways_in_one_run():
    """bench/occlusion.py, a smoke run on a 48-pixel photo: both models, both settings, each
    with the ratio, the work IncrementalOcclusion did and its difference from captum's map."""
    bench = Path(__file__).resolve().parent.parent / "bench" / "occlusion.py"
    done = subprocess.run([sys.executable, str(bench), "--size", "48", "--repeats", "1",
                           "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    summaries = re.findall(r"captum / incremental: ([\d.]+)x; multiply-adds ([\d.]+)% of "
                           r"recomputing every copy; largest difference ([\d.e+-]+) of",
                           done.stdout)
    assert len(summaries) == 4, done.stdout  # 2 models x 2 settings
    for ratio, share, gap in summaries:
        assert float(ratio) > 0 and 0 < float(share) <= 100 and float(gap) <= 1e-4
