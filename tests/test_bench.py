"""bench/attributions.py runs end to end in its quick mode and prints the comparison table."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_prints_table():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "attributions.py"), "--quick", "--size", "32", "--n-steps", "8"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "| method | variant | runs | time: median (min-max) | peak RSS |" in out
    for name in ("Integrated Gradients", "Occlusion", "Layer GradCAM"):
        assert re.search(rf"\| {name} \| baseline \| \d+ \| [\d.]+ s( \([^)]*\))? \| [\d.]+ [MG]B \|", out), name
        suite = re.search(rf"\| {name} \| suite \| \d+ \| [\d.]+ s[^|]* \| .*\| ([\d.]+)x \| ([\d.]+)x \| .* \| yes \|", out)
        assert suite, f"no suite row with ratios for {name}:\n{out}"
        assert float(suite.group(1)) > 0 and float(suite.group(2)) > 0
    assert re.search(r"\| all three \| baseline / suite \| .* \| [\d.]+x \|", out)
    assert "targets: not checked" in out
