"""Share of tokens per depth under causal threshold routing for a few thresholds,
on training windows (PyTorch, f32, the trained checkpoint): how the exported
threshold was chosen. Training used capacities 1, 2/3, 1/3, i.e. shares of
1/3 at depth 1, 2 and 3.

  /usr/bin/python3 tools/train/calibrate.py [--work build-kjv] [--windows 64]
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Cfg, Model  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--work", default="build-kjv")
    p.add_argument("--windows", type=int, default=64)
    p.add_argument("--thresholds", default="0.3,0.4,0.5,0.6,0.7")
    a = p.parse_args()
    torch.set_num_threads(1)
    st = torch.load(os.path.join(a.work, "mor", "ckpt.pt"))
    cfg = Cfg(**st["cfg"])
    m = Model(cfg)
    m.load_state_dict(st["model"])
    m.eval()
    data = np.load(os.path.join(a.work, "data", "train.npy")).astype(np.int64)
    rng = np.random.default_rng(7)
    starts = rng.integers(0, len(data) - cfg.ctx, size=a.windows)
    print("| threshold | depth 1 | depth 2 | depth 3 | mean depth |")
    print("|---:|---:|---:|---:|---:|")
    for th in map(float, a.thresholds.split(",")):
        cnt = np.zeros(cfg.nr + 1)
        with torch.no_grad():
            for s in starts:
                x = torch.from_numpy(data[s:s + cfg.ctx])[None]
                stats = {}
                m(x, mode="threshold", threshold=th, stats=stats)
                cnt += np.bincount(stats["depth"][0].numpy(), minlength=cfg.nr + 1)
        sh = cnt / cnt.sum()
        print(f"| {th:.2f} | {sh[1]:.1%} | {sh[2]:.1%} | {sh[3]:.1%} | {(sh * np.arange(cfg.nr + 1)).sum():.3f} |")


if __name__ == "__main__":
    main()
