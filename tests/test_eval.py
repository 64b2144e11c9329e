"""watcher.eval agrees with the reference scorer on the corpus copy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCORER = Path(__file__).resolve().parents[2] / "shared" / "tools" / "score_extraction.py"


@pytest.mark.skipif(not SCORER.exists(), reason="reference scorer not present beside the repo")
def test_eval_matches_reference(corpus: Path) -> None:
    from watcher.eval import run

    mine = run([str(corpus)], reps=1)
    out = subprocess.run([sys.executable, str(SCORER), str(corpus), "--bin", f"{sys.executable} -m watcher",
                          "--json", os.devnull], capture_output=True, text=True, timeout=300)
    lines = {ln.split()[0]: ln.split()[1] for ln in out.stdout.splitlines()
             if ln and ln.split()[0] in mine["tally"] and "/" in ln}
    for key, (correct, gold, _fp) in mine["tally"].items():
        if key in lines:
            assert lines[key] == f"{correct}/{gold}", key
    assert f"F1={mine['cast_f1']['f1']:.2f}" in out.stdout
