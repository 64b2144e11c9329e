"""Extraction on real articles: time per article and the memory extraction adds.

    .venv/bin/python -m benchmarks.extraction [CORPUS_DIR] [--reps N]

CORPUS_DIR defaults to ../shared/corpus. For every document beside an *.expected.json it times normalise +
extract (wall and CPU time, median over N repetitions, with every extraction cache cleared before each, so a
first reading is timed), and reports the median and p95 over documents.
Memory: resident set size (VmRSS) of this process
after loading the documents with the document stage imported, then after importing the extraction stage and
extracting every document (its name lists and caches loaded): the difference is what extraction adds.
Figures, never assertions: tests do not time anything.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _documents(corpus: Path) -> list[Path]:
    out = []
    for gold in sorted(glob.glob(str(corpus / "**" / "*.expected.json"), recursive=True)):
        stem = gold[: -len(".expected.json")]
        docs = [p for p in glob.glob(glob.escape(stem) + ".*") if not p.endswith(".expected.json")]
        if docs:
            out.append(Path(sorted(docs)[0]))
    return out


def run(corpus: Path, reps: int) -> dict[str, Any]:
    from watcher.cli.extract import load_raw
    from watcher.document import normalise

    raws = [load_raw(str(p)) for p in _documents(corpus)]
    docs = [normalise(r) for r in raws]
    before = _rss_mb()
    from watcher.eval import _clear_caches
    from watcher.extract import extract

    for d in docs:
        extract(d)
    after = _rss_mb()
    per_doc: list[float] = []
    extract_only: list[float] = []
    cpu_per_doc: list[float] = []  # CPU time: what a busy machine stretches least
    for raw in raws:
        both, only, cpu = [], [], []
        for _ in range(reps):
            _clear_caches()
            t0, c0 = time.perf_counter(), time.thread_time()
            doc = normalise(raw)
            t1 = time.perf_counter()
            extract(doc)
            t2, c2 = time.perf_counter(), time.thread_time()
            both.append((t2 - t0) * 1000)
            only.append((t2 - t1) * 1000)
            cpu.append((c2 - c0) * 1000)
        per_doc.append(statistics.median(both))
        extract_only.append(statistics.median(only))
        cpu_per_doc.append(statistics.median(cpu))
    per_doc.sort()
    return {"documents": len(raws), "reps": reps,
            "median_ms_normalise_extract": round(statistics.median(per_doc), 2),
            "p95_ms_normalise_extract": round(per_doc[min(len(per_doc) - 1, int(len(per_doc) * 0.95))], 2),
            "median_ms_extract_only": round(statistics.median(extract_only), 2),
            "median_cpu_ms_normalise_extract": round(statistics.median(cpu_per_doc), 2),
            "rss_mb_before_extraction": round(before, 1), "rss_mb_after_extraction": round(after, 1),
            "rss_mb_added_by_extraction": round(after - before, 1),
            "load_average": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared" / "corpus"))
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args(argv)
    if not Path(a.corpus).is_dir():
        print(f"extraction: not a directory: {a.corpus}", file=sys.stderr)
        return 2
    print(json.dumps(run(Path(a.corpus), a.reps), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
