"""The numbers of docs/routing-study.md: validation perplexity of the exported
models, computed from the logits of the compiled morc executables (`morc build`,
then `EXE --tokens ... -n 0 --logits W.npy --depths D.txt` per validation window),
cross-checked against PyTorch (tests/reference/mor_ref.py on the same BF16 weights,
and the trainer's own f32 evaluation in OUT/summary.json).

  /usr/bin/python3 tools/train/study.py [--work build-kjv] [--windows 211] [--check 6]

Variants (exported by this script from the checkpoints into WORK/study/):
  mor_topk       MoR, top_k routing (as in training; non-causal)
  mor_threshold  MoR, causal threshold routing (the exported examples/kjv model)
  mor_full       MoR, every token at full depth (capacity [1, 1, 1])
  tc             token-choice MoR (if trained)
  recursive      recursive baseline (no router, every token 3 recursions)
  vanilla        8 unique layers
Writes WORK/study/results.json and prints a Markdown table.
"""
import argparse
import collections
import json
import math
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))


def sh(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def nll(logits, targets):
    return -log_softmax(logits)[np.arange(len(targets)), targets]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--work", default=os.path.join(ROOT, "build-kjv"))
    p.add_argument("--morc", default=os.path.join(ROOT, "build", "bin", "morc"))
    p.add_argument("--windows", type=int, default=1000)
    p.add_argument("--check", type=int, default=6, help="windows cross-checked with mor_ref")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--only", help="comma-separated variants (results.json is merged)")
    a = p.parse_args()
    W, S = a.work, os.path.join(a.work, "study")
    os.makedirs(S, exist_ok=True)
    val = np.load(os.path.join(W, "data", "val.npy")).astype(np.int64)
    n = min(a.windows, (len(val) - 1) // a.ctx)
    wins = [val[i * a.ctx:i * a.ctx + a.ctx + 1] for i in range(n)]
    exp = [sys.executable, os.path.join(ROOT, "tools", "train", "export.py")]
    variants = []
    if os.path.exists(os.path.join(W, "mor", "ckpt.pt")):
        ck = os.path.join(W, "mor", "ckpt.pt")
        variants += [("mor_topk", ck, ["--inference-routing", "top_k"]),
                     ("mor_threshold", ck, ["--threshold", str(a.threshold)]),
                     ("mor_full", ck, ["--full-depth"])]
    for k in ("tc", "recursive", "vanilla"):
        ck = os.path.join(W, k, "ckpt.pt")
        if os.path.exists(os.path.join(W, k, "summary.json")):
            variants.append((k, ck, []))
    if a.only:
        variants = [v for v in variants if v[0] in a.only.split(",")]
    rpath = os.path.join(S, "results.json")
    results = json.load(open(rpath)) if os.path.exists(rpath) else {}
    import mor_ref
    for name, ck, extra in variants:
        d = os.path.join(S, name)
        sh(*exp, ck, d, "--tokenizer", "", "--threshold", str(a.threshold), *extra)
        desc = os.path.join(d, "config.json" if name == "vanilla" else "model.json")
        exe = os.path.join(d, "exe")
        sh(a.morc, "build", desc, "-o", exe)
        tot, cnt, depth_tok = 0.0, 0, []
        ref_max, ref_nll, bin_nll_chk = 0.0, 0.0, 0.0
        ref = mor_ref.load_model(d) if a.check else None
        for i, w in enumerate(wins):
            lf, df = os.path.join(d, "w.npy"), os.path.join(d, "w.depths")
            sh(exe, "--tokens", ",".join(map(str, w[:-1])), "-n", "0", "--threads", "1",
               "--logits", lf, "--depths", df)
            lg = np.load(lf)
            ll = nll(lg, w[1:])
            tot += ll.sum()
            cnt += len(ll)
            dep = [int(x) for x in open(df).read().split()]
            depth_tok += list(zip(w[:-1].tolist(), dep))
            if i < a.check:
                rl, rd = ref.run(w[:-1].tolist(), None)[:2]
                rl = np.asarray(rl, dtype=np.float32)
                ref_max = max(ref_max, float(np.abs(rl - lg).max()))
                ref_nll += nll(rl, w[1:]).sum()
                bin_nll_chk += ll.sum()
                assert list(map(int, rd)) == dep, f"{name}: depths differ from mor_ref in window {i}"
        cnt_chk = a.check * a.ctx
        hist = collections.Counter(dd for _, dd in depth_tok)
        r = {"windows": n, "tokens": cnt, "nll": tot / cnt, "ppl": math.exp(tot / cnt),
             "depth_share": {str(k): hist[k] / len(depth_tok) for k in sorted(hist)},
             "mean_depth": sum(k * v for k, v in hist.items()) / len(depth_tok),
             "check_windows": a.check, "check_max_abs_logit_diff": ref_max,
             "check_ppl_binary": math.exp(bin_nll_chk / cnt_chk) if a.check else None,
             "check_ppl_mor_ref": math.exp(ref_nll / cnt_chk) if a.check else None}
        sm = os.path.join(W, name.split("_")[0], "summary.json")
        if os.path.exists(sm):
            s = json.load(open(sm))
            r["trainer_val_ppl_f32_topk"] = s["val_ppl"]
            r["train_steps"], r["train_tokens"], r["train_macs"] = s["steps"], s["train_tokens"], s["train_macs"]
            r["params"] = s["params"]
        results[name] = r
        if name == "mor_threshold":
            json.dump(depth_tok, open(os.path.join(S, "depth_tokens.json"), "w"))
        print(name, json.dumps(r), flush=True)
        json.dump(results, open(rpath, "w"), indent=1)


if __name__ == "__main__":
    main()
