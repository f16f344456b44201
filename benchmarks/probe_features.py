"""How much of the generated world's colours and kinds the frozen backbone features hold.

A caption names every object's colour and kind correctly only if the image feature tells
them apart. This fits classifiers directly on the cached features of the training split and
scores the test split:

* the set of colour-kind pairs of an image (80 labels), given the number of objects: exact
  set right, for one-object and two-object images (two objects need colour *bound* to kind);
* colour, kind and size of one-object images separately, with the most common confusions.

A linear classifier and one with a hidden layer of 1024 units, 25 epochs of Adam each. The
scores bound what a decoder reading the same features can reach.

    python benchmarks/probe_features.py [--work DIR] [--pooling avg grid+colour]

Prints a table and writes benchmarks/results/probe_features.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.training.features import compute_features  # noqa: E402
from engine.training.karpathy import load_karpathy  # noqa: E402
from engine.training.options import POOLINGS  # noqa: E402
from engine.training.world import COLOURS, KINDS, SIZES, generate  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "probe_features.json"


def fit(
    x: torch.Tensor, y: torch.Tensor, outputs: int, hidden: int, multilabel: bool, seed: int = 0
) -> torch.nn.Module:
    torch.manual_seed(seed)
    dim = x.shape[1]
    net: torch.nn.Module
    if hidden:
        net = torch.nn.Sequential(
            torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(hidden, outputs)
        )
    else:
        net = torch.nn.Linear(dim, outputs)
    optimiser = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits if multilabel else torch.nn.functional.cross_entropy
    for _ in range(25):
        net.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), 256):
            batch = order[i : i + 256]
            loss = loss_fn(net(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "photoseek-eval-seed")
    parser.add_argument("--images-per-split", type=int, nargs=3, default=(8000, 1000, 1000))
    # Pooled vectors only: the "regions" map needs a region encoder, not a classifier on a vector.
    parser.add_argument(
        "--pooling", nargs="+", default=["avg", "grid+colour"], choices=[p for p in POOLINGS if p != "regions"]
    )
    args = parser.parse_args()
    n_train, n_val, n_test = args.images_per_split
    examples = load_karpathy(generate(args.work / "world", n_train=n_train, n_val=n_val, n_test=n_test))
    split = {s: [e for e in examples if e.split == s] for s in ("train", "test")}
    results: dict = {}
    lines = ["| feature | classifier | pairs exact, 1 object | pairs exact, 2 objects | colour | kind | size |"]
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for pooling in args.pooling:
        raw = {
            s: torch.from_numpy(
                compute_features([e.path for e in split[s]], "efficientnet-lite0", args.work / "cache", pooling=pooling)
            )
            for s in split
        }
        mean, std = raw["train"].mean(0), raw["train"].std(0).clamp(min=1e-3)
        x = {s: (raw[s] - mean) / std for s in split}
        pairs = {}
        for s in split:
            y = torch.zeros(len(split[s]), 80)
            for i, e in enumerate(split[s]):
                for g in e.meta["objects"]:
                    y[i, COLOURS.index(g["colour"]) * len(KINDS) + KINDS.index(g["kind"])] = 1
            pairs[s] = y
        one = {s: torch.tensor([len(e.meta["objects"]) == 1 for e in split[s]]) for s in split}
        for hidden in (0, 1024):
            name = "linear" if hidden == 0 else "1 hidden layer"
            net = fit(x["train"], pairs["train"], 80, hidden, multilabel=True)
            with torch.no_grad():
                scores = net(x["test"])
            count = pairs["test"].sum(1).long()
            top = scores.argsort(1, descending=True)
            exact = torch.tensor(
                [
                    set(top[i, : count[i]].tolist()) == set(torch.nonzero(pairs["test"][i]).flatten().tolist())
                    for i in range(len(scores))
                ]
            )
            row = {
                "one_object_exact": float(exact[one["test"]].float().mean()),
                "two_objects_exact": float(exact[~one["test"]].float().mean()),
            }
            for attribute, names in (("colour", COLOURS), ("kind", KINDS), ("size", SIZES)):
                ys = {
                    s: torch.tensor([names.index(e.meta["objects"][0][attribute]) for e in split[s]])[one[s]]
                    for s in split
                }
                attr_net = fit(x["train"][one["train"]], ys["train"], len(names), hidden, multilabel=False)
                with torch.no_grad():
                    predicted = attr_net(x["test"][one["test"]]).argmax(1)
                row[attribute] = float((predicted == ys["test"]).float().mean())
                confusions = Counter(
                    (names[t], names[p]) for t, p in zip(ys["test"].tolist(), predicted.tolist(), strict=True) if t != p
                )
                row[f"{attribute}_confusions"] = [f"{t}->{p}: {n}" for (t, p), n in confusions.most_common(4)]
            results[f"{pooling}/{name}"] = row
            lines.append(
                f"| {pooling} | {name} | {row['one_object_exact']:.3f} | {row['two_objects_exact']:.3f} "
                f"| {row['colour']:.3f} | {row['kind']:.3f} | {row['size']:.3f} |"
            )
            print(lines[-1], flush=True)
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
