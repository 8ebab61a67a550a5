"""Train one model of the KJV study on CPU.

  /usr/bin/python3 tools/train/train.py --kind mor --steps 1200 --out build-kjv/mor
  (--kind vanilla | recursive: same data, schedule and seed; give --match-compute
   build-kjv/mor to set the step count so that the training compute equals the MoR
   run's, counted as linear-layer multiply-accumulates per token, model.py)

Deterministic for a seed (torch and numpy seeded; the batch of step i is drawn from
a generator seeded with (seed, i), so a resumed run sees the same batches).
Resumable: OUT/ckpt.pt is written every --ckpt-every steps and at the end; rerun the
same command to continue from it.  Prints step, loss, lr, tokens/s and ETA.
Optimiser: AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), warmup-stable-decay
schedule (linear warmup, constant, linear decay to 0 over the last --decay share).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Cfg, Model, linear_macs_per_token  # noqa: E402


def lr_at(step, a):
    warm = max(1, int(a.warmup * a.steps))
    decay = max(1, int(a.decay * a.steps))
    if step < warm:
        return a.lr * (step + 1) / warm
    if step < a.steps - decay:
        return a.lr
    return a.lr * max(0.0, (a.steps - step) / decay)


def batch(data, step, a):
    rng = np.random.default_rng([a.seed, step])
    starts = rng.integers(0, len(data) - a.ctx - 1, size=a.batch)
    x = np.stack([data[s:s + a.ctx + 1] for s in starts]).astype(np.int64)
    x = torch.from_numpy(x)
    return x[:, :-1], x[:, 1:]


@torch.no_grad()
def evaluate(model, data, ctx, mode="top_k", max_windows=None):
    model.eval()
    n = (len(data) - 1) // ctx
    if max_windows:
        n = min(n, max_windows)
    tot, cnt = 0.0, 0
    for i in range(0, n, 8):
        w = [data[j * ctx:j * ctx + ctx + 1] for j in range(i, min(n, i + 8))]
        x = torch.from_numpy(np.stack(w).astype(np.int64))
        logits, _ = model(x[:, :-1], mode=mode)
        tot += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                               reduction="sum").item()
        cnt += x[:, 1:].numel()
    model.train()
    return tot / cnt


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kind", default="mor", choices=["mor", "tc", "recursive", "vanilla"])
    p.add_argument("--data", default="build-kjv/data")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--match-mor-steps", type=int,
                   help="steps of the MoR run (same sizes, batch, ctx): set --steps for the same "
                        "training compute")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=float, default=0.05)
    p.add_argument("--decay", type=float, default=0.25)
    p.add_argument("--wd", type=float, default=0.1)
    p.add_argument("--aux", type=float, default=None,
                   help="router loss coefficient: BCE 0.001 (mor), balancing 0.1 (tc)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ckpt-every", type=int, default=50)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--ffn", type=int, default=704)
    p.add_argument("--layers", type=int, default=8)
    a = p.parse_args()
    if a.aux is None:
        a.aux = 0.1 if a.kind == "tc" else 0.001
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)

    meta = json.load(open(os.path.join(a.data, "books.json")))
    cfg = Cfg(kind=a.kind, vocab=meta["vocab_size"], d=a.d, ffn=a.ffn, layers=a.layers,
              ctx=a.ctx)
    if a.match_mor_steps:
        ref = linear_macs_per_token(Cfg(**dict(cfg.__dict__, kind="mor")))
        a.steps = int(round(a.match_mor_steps * ref / linear_macs_per_token(cfg)))
        print(f"same compute as {a.match_mor_steps} MoR steps: {a.steps} steps")
    model = Model(cfg)
    decay = [p_ for n, p_ in model.named_parameters() if p_.dim() >= 2]
    no_decay = [p_ for n, p_ in model.named_parameters() if p_.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    train = np.load(os.path.join(a.data, "train.npy"))
    val = np.load(os.path.join(a.data, "val.npy"))
    ckpt = os.path.join(a.out, "ckpt.pt")
    step, log = 0, []
    if os.path.exists(ckpt):
        st = torch.load(ckpt)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, log = st["step"], st["log"]
        torch.set_rng_state(st["rng"])
        print(f"resumed from {ckpt} at step {step}")
    nparams = sum(p_.numel() for p_ in model.parameters())
    macs_tok = linear_macs_per_token(cfg)
    print(f"{a.kind}: {nparams} parameters, {macs_tok} linear MACs/token, {a.steps} steps of "
          f"{a.batch}x{a.ctx} tokens", flush=True)

    def save(final=False):
        tmp = ckpt + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "log": log, "rng": torch.get_rng_state(), "args": vars(a),
                    "cfg": cfg.__dict__}, tmp)
        os.replace(tmp, ckpt)

    t0, s0 = time.time(), step
    model.train()
    acc_loss, acc_aux, acc_n = 0.0, 0.0, 0
    while step < a.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a)
        x, y = batch(train, step, a)
        logits, aux = model(x)
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab), y.reshape(-1))
        total = loss + a.aux * aux
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        acc_loss += loss.item()
        acc_aux += float(aux)
        acc_n += 1
        if step % a.log_every == 0 or step == a.steps:
            el = time.time() - t0
            rate = (step - s0) / el
            eta = (a.steps - step) / rate
            rec = {"step": step, "loss": acc_loss / acc_n, "aux": acc_aux / acc_n,
                   "lr": lr_at(step - 1, a), "elapsed": el}
            log.append(rec)
            print(f"step {step}/{a.steps} loss {rec['loss']:.4f} aux {rec['aux']:.4f} "
                  f"lr {rec['lr']:.2e} {rate * a.batch * a.ctx:.0f} tok/s "
                  f"elapsed {el / 60:.1f} min ETA {eta / 60:.1f} min", flush=True)
            acc_loss, acc_aux, acc_n = 0.0, 0.0, 0
        if step % a.ckpt_every == 0 and step < a.steps:
            save()
    save(final=True)
    vl = evaluate(model, val, a.ctx, "top_k")
    summ = {"kind": a.kind, "params": nparams, "steps": a.steps, "batch": a.batch,
            "ctx": a.ctx, "train_tokens": a.steps * a.batch * a.ctx,
            "linear_macs_per_token": macs_tok,
            "train_macs": macs_tok * a.steps * a.batch * a.ctx,
            "final_train_loss": log[-1]["loss"] if log else None,
            "val_loss": vl, "val_ppl": math.exp(vl), "args": vars(a), "cfg": cfg.__dict__,
            "wall_s_this_run": time.time() - t0}
    json.dump(summ, open(os.path.join(a.out, "summary.json"), "w"), indent=1)
    print(f"done: val loss {vl:.4f} ppl {math.exp(vl):.2f}", flush=True)


if __name__ == "__main__":
    main()
