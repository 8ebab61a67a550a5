"""Validation perplexity of the trained checkpoints with the trainer's own PyTorch
models (f32 compute, weights rounded to BF16 as exported, batch 1 so threshold
routing is exact): the PyTorch side of docs/routing-study.md's cross-check
against the compiled morc binaries (tools/train/study.py).

  /usr/bin/python3 tools/train/torch_eval.py [--work build-kjv] [--kinds mor,vanilla,...]
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Cfg, Model  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--work", default="build-kjv")
    p.add_argument("--kinds", default="mor,tc,recursive,vanilla")
    p.add_argument("--threshold", type=float, default=0.5)
    a = p.parse_args()
    torch.set_num_threads(1)
    val = np.load(os.path.join(a.work, "data", "val.npy")).astype(np.int64)
    out = {}
    for kind in a.kinds.split(","):
        ck = os.path.join(a.work, kind, "ckpt.pt")
        if not os.path.exists(os.path.join(a.work, kind, "summary.json")):
            continue
        st = torch.load(ck)
        cfg = Cfg(**st["cfg"])
        m = Model(cfg)
        m.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in st["model"].items()})
        m.eval()
        n = (len(val) - 1) // cfg.ctx
        modes = ["top_k", "threshold", "full"] if kind == "mor" else ["-"]
        for mode in modes:
            tot, cnt = 0.0, 0
            with torch.no_grad():
                for i in range(n):
                    w = torch.from_numpy(val[i * cfg.ctx:i * cfg.ctx + cfg.ctx + 1])[None]
                    lg, _ = m(w[:, :-1], mode=mode if kind == "mor" else "top_k", threshold=a.threshold)
                    tot += F.cross_entropy(lg[0].double(), w[0, 1:], reduction="sum").item()
                    cnt += cfg.ctx
            name = f"{kind}_{mode}" if kind == "mor" else kind
            out[name] = {"nll": tot / cnt, "ppl": math.exp(tot / cnt), "tokens": cnt}
            print(name, json.dumps(out[name]), flush=True)
    path = os.path.join(a.work, "study", "torch_eval.json")
    old = json.load(open(path)) if os.path.exists(path) else {}
    old.update(out)
    json.dump(old, open(path, "w"), indent=1)


if __name__ == "__main__":
    main()
