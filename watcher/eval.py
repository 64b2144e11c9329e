"""`python -m watcher.eval DIR [DIR...] [--reps N] [--misses]`: score extraction in-process against *.expected.json.

--misses prints, per document, each fact missed, wrong or invented (with the evidence the extractor used), so a
rule change can be judged on the whole corpus at once.

The metrics are the reference scorer's (shared/tools/score_extraction.py): its functions are loaded from
WATCHER_SCORER (default ../shared/tools/score_extraction.py) so the two cannot drift apart.
Also prints the median extraction time per document (normalise + extract) over many repetitions.
"""

from __future__ import annotations

import datetime as dt
import glob
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def _scorer() -> Any:
    default = Path(__file__).resolve().parents[2] / "shared" / "tools" / "score_extraction.py"
    path = os.environ.get("WATCHER_SCORER") or str(default)
    spec = importlib.util.spec_from_file_location("_reference_scorer", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"eval: reference scorer not found at {path} (set WATCHER_SCORER)")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _clear_caches() -> None:
    from watcher.extract import clear_caches

    clear_caches()


def run(dirs: list[str], reps: int = 50) -> dict[str, Any]:
    from watcher.cli.extract import load_raw
    from watcher.document import normalise
    from watcher.extract import extract

    sc = _scorer()
    golds = sorted(p for d in dirs for p in glob.glob(os.path.join(d, "**", "*.expected.json"), recursive=True))
    t, rows, times = sc.Tally(), [], []
    extract_times: list[float] = []
    for gp in golds:
        gold = json.loads(Path(gp).read_text(encoding="utf-8"))
        doc_path = sc.document_for(gp)
        row: dict[str, Any] = {"doc": doc_path or gp}
        d = gold.get("document", {})
        ref_s = d.get("published") or d.get("assume_published")
        ref = dt.date.fromisoformat(ref_s) if ref_s else None
        raw = load_raw(doc_path) if doc_path else None
        pred: dict[str, Any] = {}
        if raw is not None:
            samples, only = [], []
            for _ in range(reps):
                _clear_caches()  # time a first reading, not a cache hit
                t0 = time.perf_counter()
                doc = normalise(raw)
                t1 = time.perf_counter()
                pred = extract(doc, reference_date=ref).to_json_dict()
                t2 = time.perf_counter()
                samples.append(t2 - t0)
                only.append(t2 - t1)
            times.append(statistics.median(samples))
            extract_times.append(statistics.median(only))
        sc.score_doc(gold, pred, t, row)
        row["misses"] = misses(sc, gold, pred)
        rows.append(row)
    cn = t.n.get("cast_names", [0, 0, 0])
    prec = cn[0] / (cn[0] + cn[2]) if cn[0] + cn[2] else 0.0
    rec = cn[0] / cn[1] if cn[1] else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"tally": t.n, "rows": rows, "cast_f1": {"precision": prec, "recall": rec, "f1": f1},
            "median_ms_per_doc": statistics.median(times) * 1000 if times else None,
            "median_extract_ms_per_doc": statistics.median(extract_times) * 1000 if extract_times else None,
            "documents": len(golds),
            "rates": {k: t.rate(k) for k in t.n}}


_SCALARS = ("renewal", "production", "platform", "trailer")


def misses(sc: Any, gold: dict[str, Any], pred: dict[str, Any]) -> list[str]:
    """Every difference between a document's gold facts and the predicted ones, one readable line each."""
    out: list[str] = []
    gf, pf = gold.get("facts", {}), pred.get("facts") or {}
    for key in ("work", "season"):
        if (sc.norm(str(gold.get(key))) if key == "work" else gold.get(key)) != (
                sc.norm(str(pred.get(key))) if key == "work" else pred.get(key)):
            out.append(f"{key}: wrong {pred.get(key)!r}, want {gold.get(key)!r}")
    gi, pi = sc.interval(gf.get("release")), sc.interval(pf.get("release"))
    if gi != pi:
        ev = (pf.get("release") or {}).get("evidence", "")
        kind = "missed" if pi is None else "invented" if gi is None else "wrong"
        out.append(f"release: {kind} {pi}, want {gi}" + (f"  | {ev[:100]}" if ev else ""))
    for key in _SCALARS:
        g = gf.get(key)
        p = pf.get(key)
        pv = p.get("value") if isinstance(p, dict) else p
        if sc.norm(g) != sc.norm(pv):
            kind = "missed" if pv is None else "invented" if g is None else "wrong"
            ev = p.get("evidence", "") if isinstance(p, dict) else ""
            out.append(f"{key}: {kind} {pv!r}, want {g!r}" + (f"  | {ev[:100]}" if ev else ""))
    for part in ("start", "end"):
        g = (gf.get("filming") or {}).get(part)
        p = str((pf.get("filming") or {}).get(part) or "")[:10] or None
        if g != p and (g or p):
            out.append(f"filming {part}: {'missed' if p is None else 'invented' if g is None else 'wrong'} {p!r}, "
                       f"want {g!r}")
    gc, pc = sc.cast_map(gf.get("cast")), sc.cast_map(pf.get("cast"))
    used: set[str] = set()
    extra_ok = gold.get("scoring", {}).get("cast_extra_ok", False)
    for pv in pc.values():
        hit = next((gk for gk, gv in gc.items() if gk not in used and pv["_names"] & gv["_names"]), None)
        if hit is None:
            if not extra_ok:
                out.append(f"cast: invented {pv['actor']} ({pv.get('status')})  | {pv.get('evidence', '')[:100]}")
            continue
        used.add(hit)
        g = gc[hit]
        if sc.norm(g.get("status")) != sc.norm(pv.get("status")):
            out.append(f"cast: {pv['actor']} status {pv.get('status')}, want {g.get('status')}  | "
                       f"{pv.get('evidence', '')[:100]}")
        want = g.get("character")
        if want and sc.norm(pv.get("character")) not in {sc.norm(w) for w in (want if isinstance(want, list)
                                                                               else [want])}:
            out.append(f"cast: {pv['actor']} character {pv.get('character')!r}, want {want!r}")
    out.extend(f"cast: missed {g['actor']} ({g.get('status')})" for k, g in gc.items() if k not in used)
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    reps = 50
    show_misses = "--misses" in args
    if show_misses:
        args.remove("--misses")
        reps = 1 if "--reps" not in args else reps
    if "--reps" in args:
        i = args.index("--reps")
        reps = int(args[i + 1])
        del args[i:i + 2]
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m watcher.eval DIR [DIR...] [--reps N] [--misses]", file=sys.stderr)
        return 0 if args else 2
    missing = [a for a in args if not Path(a).is_dir()]
    if missing:
        print(f"eval: not a directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    r = run(args, reps)
    for row in r["rows"]:
        if show_misses:
            print(("ok   " if not row["misses"] else "MISS ") + row["doc"])
            for line in row["misses"]:
                print("     " + line)
            continue
        bad = {k: v for k, v in row.items() if k not in ("doc", "misses") and v != "ok"}
        print(("FAIL " if bad else "ok   ") + row["doc"] + ("" if not bad else "  " + json.dumps(bad)[:600]))
    print()
    for k, v in r["tally"].items():
        if k != "cast_names":
            rate = r["rates"][k]
            print(f"{k:18} {v[0]:3}/{v[1]:<3} fp={v[2]:<3} {'' if rate is None else f'{rate:.0%}'}")
    c = r["cast_f1"]
    print(f"cast names         P={c['precision']:.2f} R={c['recall']:.2f} F1={c['f1']:.2f}")
    if r["median_ms_per_doc"] is not None:
        print(f"documents={r['documents']} median_ms_per_doc={r['median_ms_per_doc']:.2f} (normalise+extract), "
              f"extract only {r['median_extract_ms_per_doc']:.2f} ms; median over {reps} reps per document")
    return 0


if __name__ == "__main__":
    sys.exit(main())
