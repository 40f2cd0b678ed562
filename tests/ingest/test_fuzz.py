"""A bounded coverage-guided fuzzing run of the readers (see tests/ingest/fuzz/readers.py): 20,000
inputs or 30 s, whichever comes first."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).parent / "fuzz" / "corpus"
ROOT = Path(__file__).parent.parent.parent


@pytest.mark.timeout(180)
def test_fuzzed_bodies_get_equal_answers_from_every_reader(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)  # libFuzzer adds what it finds to the corpus it is given
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.ingest.fuzz.readers",
            "-runs=20000",
            "-max_total_time=30",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    tail = run.stderr[-3000:]
    assert run.returncode == 0, f"the fuzzer found a failing input:\n{tail}"
    assert "Done " in run.stderr, tail
    assert not list(tmp_path.glob("crash-*")), tail
    # It explored: the corpus grew past its four seeds.
    assert len(list(corpus.iterdir())) > len(list(CORPUS.iterdir())), tail
