"""Which tokens get more recursions under causal threshold routing: reads
WORK/study/depth_tokens.json (written by study.py: (token id, depth) for every
validation token of the mor_threshold variant) and prints, per kind of token, the
count, mean depth and share at each depth, and the most frequent tokens at depth 1
and 3 (with their share at that depth).

  /usr/bin/python3 tools/train/token_kinds.py [--work build-kjv]
"""
import argparse
import collections
import json
import os

from tokenizers import Tokenizer

FUNCTION = set("""the and of to that in he shall unto for i his a they be is him not them it
with all thou thy was which my me but ye their have thee from as are when this out were by
upon an or then there so at into us had if what who no her she we our your you up let
be hath o nor these those""".split())


def kind(s):
    w = s.strip()
    if s == "\n" or (not w and "\n" in s):
        return "newline"
    if not w:
        return "space"
    if w.isdigit():
        return "number (verse/chapter)"
    if all(not c.isalnum() for c in w):
        return "punctuation"
    starts = s.startswith(" ") or s[:1].isupper()
    if not starts:
        return "word continuation (inside a word)"
    if w.lower() in FUNCTION:
        return "function word"
    if w[:1].isupper():
        return "capitalised word start (names, LORD, God)"
    return "content word start (lower case)"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--work", default="build-kjv")
    a = p.parse_args()
    dt = json.load(open(os.path.join(a.work, "study", "depth_tokens.json")))
    tok = Tokenizer.from_file(os.path.join(a.work, "data", "tokenizer.json"))
    by = collections.defaultdict(list)
    per_tok = collections.defaultdict(list)
    for t, d in dt:
        s = tok.decode([t])
        by[kind(s)].append(d)
        per_tok[s].append(d)
    print("| kind of token | tokens | mean depth | depth 1 | depth 2 | depth 3 |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, ds in sorted(by.items(), key=lambda kv: -sum(kv[1]) / len(kv[1])):
        n = len(ds)
        c = collections.Counter(ds)
        print(f"| {k} | {n} | {sum(ds) / n:.2f} | {c[1] / n:.0%} | {c[2] / n:.0%} | {c[3] / n:.0%} |")
    common = [(s, ds) for s, ds in per_tok.items() if len(ds) >= 20]
    for depth in (3, 1):
        ranked = sorted(common, key=lambda x: -sum(1 for d in x[1] if d == depth) / len(x[1]))[:15]
        print(f"\ntokens (seen >= 20 times) most often at depth {depth}: " + ", ".join(
            f"`{s!r}` {sum(1 for d in ds if d == depth) / len(ds):.0%} of {len(ds)}" for s, ds in ranked))


if __name__ == "__main__":
    main()
