"""Results tables in the paper's layout (Markdown, so they print and paste alike)."""

from __future__ import annotations

from collections.abc import Mapping


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def retrieval_table(rows: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """``rows``: model name -> the ``retrieval`` dict of :func:`engine.training.train.evaluate`."""
    lines = [
        "| Model | Annotation R@1 | R@5 | R@10 | Med r | Search R@1 | R@5 | R@10 | Med r |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, metrics in rows.items():
        a, s = metrics["annotation"], metrics["search"]
        cells = [_pct(a["r1"]), _pct(a["r5"]), _pct(a["r10"]), f"{a['medr']:g}"]
        cells += [_pct(s["r1"]), _pct(s["r5"]), _pct(s["r10"]), f"{s['medr']:g}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def caption_table(rows: Mapping[str, Mapping[str, object]]) -> str:
    """``rows``: "decoder/search" -> caption scores (BLEU-1..4, CIDEr, attribute accuracy)."""
    lines = [
        "| Decoder | Search | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | CIDEr | Colour, kind right | 1 object | 2 objects |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {"lstm": "LSTM decoder", "scnlm": "SC-NLM"}
    for key, scores in rows.items():
        decoder, search = key.split("/", 1)
        attributes = scores.get("attributes")
        cells = [f"{float(scores[b]):.3f}" for b in ("bleu1", "bleu2", "bleu3", "bleu4")]  # type: ignore[arg-type]
        cells.append(f"{float(scores['cider']):.2f}")  # type: ignore[arg-type]
        for value in (attributes, scores.get("attributes_one_object"), scores.get("attributes_two_objects")):
            cells.append("n/a" if value is None else f"{float(value):.3f}")  # type: ignore[arg-type]
        lines.append(f"| {names.get(decoder, decoder)} | {search} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
