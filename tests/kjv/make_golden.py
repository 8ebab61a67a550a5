"""Goldens of tests/kjv.cmake from examples/kjv (run after tools/train/export.py):

  golden/tokens.txt, logits.npy, depths.txt   a validation snippet (James, never
      trained on) through tests/reference/mor_ref.py: f64 compute on the BF16
      weights of examples/kjv, logits stored as f32
  tok/NAME.txt + NAME.ids    validation text and edge cases encoded by the Hugging
      Face `tokenizers` package with examples/kjv/tokenizer.json

  /usr/bin/python3 tests/kjv/make_golden.py [VAL_TXT]   (default build-kjv/data/val.txt)
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import mor_ref  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

EX = os.path.join(ROOT, "examples", "kjv")
T = 64


def main():
    val = open(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build-kjv", "data", "val.txt")).read()
    tok = Tokenizer.from_file(os.path.join(EX, "tokenizer.json"))
    os.makedirs(os.path.join(HERE, "tok"), exist_ok=True)
    ruth = val[:val.index("Esther 1\n")]
    j0 = val.index("James 1\n")
    james = val[j0:val.index("James 3\n")]
    edge = ("  Leading spaces,\ttabs\t\tand  double  spaces.\r\nCRLF line; 3:16 and 144000 numbers.\n"
            "Unicode: caf\u00e9, na\u00efve, \u00c6thelred, \u201cquotes\u201d \u2014 dash, \u00bd, "
            "Greek \u03b1\u03b2\u03b3, Hebrew \u05d0\u05d1, emoji \U0001F600, CJK \u4e2d\u6587.\n"
            "LORD's house, ye'll, O'er; (parenthesis) [brackets] {braces}!?\n\n\n   trailing   ")
    for name, text in (("val_ruth", ruth), ("val_james", james), ("edge", edge)):
        ids = tok.encode(text).ids
        assert tok.decode(ids) == text
        with open(os.path.join(HERE, "tok", name + ".txt"), "w", newline="") as f:
            f.write(text)
        with open(os.path.join(HERE, "tok", name + ".ids"), "w") as f:
            f.write(" ".join(map(str, ids)) + "\n")
        print(name, len(text.encode()), "bytes", len(ids), "ids")

    ids = tok.encode(val[j0:j0 + 2000]).ids[:T]
    m64 = mor_ref.load_model(EX)
    lg, dp = m64.run(ids)
    # the f32 reference routes every token the same way (no router score sits at
    # the threshold within f32 rounding), so depths are a stable golden
    m32 = mor_ref.load_model(EX, dtype=torch.float32)
    lg32, dp32 = m32.run(ids)
    assert list(dp) == list(dp32), "f32 and f64 routing differ: pick another snippet"
    print("f32 vs f64 max |logit diff|", float(np.abs(lg - lg32).max()))
    g = os.path.join(HERE, "golden")
    os.makedirs(g, exist_ok=True)
    np.save(os.path.join(g, "logits.npy"), lg.astype(np.float32))
    with open(os.path.join(g, "tokens.txt"), "w") as f:
        f.write(",".join(map(str, ids)) + "\n")
    with open(os.path.join(g, "depths.txt"), "w") as f:
        f.write("".join(f"{int(d)}\n" for d in dp))
    print("golden:", len(ids), "tokens, depths", np.bincount(dp).tolist())


if __name__ == "__main__":
    main()
