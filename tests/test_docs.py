"""The README and docs/: every ```python block runs as written, alone, in a fresh folder; the README
stays short; its speed table is the one ``ratios.py --markdown`` makes from docs/benchmark.json."""

import json
import os
import re
import subprocess
import sys

import pytest

from .benchmarks import ratios

ROOT = os.path.join(os.path.dirname(__file__), "..")
DOCS = sorted(f for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
PAGES = ["README.md", *(os.path.join("docs", f) for f in DOCS)]


def python_blocks():
    """(page:line, code) of every ```python block of the README and docs/."""
    for page in PAGES:
        with open(os.path.join(ROOT, page)) as f:
            text = f.read()
        for match in re.finditer(r"^```python\n(.*?)^```$", text, re.DOTALL | re.MULTILINE):
            yield f"{page}:{text[: match.start()].count(chr(10)) + 1}", match.group(1)


BLOCKS = list(python_blocks())


def test_the_pages_have_examples():
    assert len(BLOCKS) >= 10 and any(where.startswith("README.md") for where, _ in BLOCKS)


@pytest.mark.parametrize("code", [code for _, code in BLOCKS], ids=[w for w, _ in BLOCKS])
def test_every_python_block_runs_alone_in_a_fresh_folder(code, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("PYTHONPATH", None)  # fastffn as installed, as a reader has it
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]


def test_the_readme_is_short():
    with open(os.path.join(ROOT, "README.md")) as f:
        assert len(f.read().splitlines()) <= 200


def test_the_readme_speed_table_is_generated_from_the_benchmark_run():
    with open(os.path.join(ROOT, "docs", "benchmark.json")) as f:
        table = ratios.markdown(json.load(f))
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    start = readme.index("<!-- speed table: generated")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- end of speed table -->")
    assert readme[start:end].strip() == table.strip()
    assert "JAX" in table and "scikit-learn" in table and "notebook" in table
