"""Export a trained checkpoint to a morc model: model.json (or config.json for the
vanilla Llama) + model.safetensors with the official MoR parameter names
(docs/model-format.md section 3), weights rounded to BF16, and tokenizer.json.

  /usr/bin/python3 tools/train/export.py CKPT OUTDIR [--tokenizer FILE]
      [--threshold 0.5] [--inference-routing threshold|top_k] [--full-depth]
      [--dtype BF16|F32] [--max-pos 256]

--full-depth writes capacity [1, 1, 1] (threshold routing then sends every token
through every recursion: variant (c) of docs/routing-study.md).
"""
import argparse
import json
import os
import shutil
import struct

import torch

LAYER = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
         "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm",
         "post_attention_layernorm")


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().float().contiguous()
        if dtype == "BF16":
            raw = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def layer(out, sd, src, dst):
    for part in LAYER:
        out[f"{dst}.{part}.weight"] = sd[f"{src}.{part}.weight"]


def names(kind, sd, c):
    out = {"model.embed_tokens.weight": sd["embed.weight"], "model.norm.weight": sd["norm.weight"]}
    nr, B = c["nr"], (c["layers"] - 2) // c["nr"]
    if kind == "vanilla":
        for l in range(c["layers"]):
            layer(out, sd, f"layers.{l}", f"model.layers.{l}")
    elif kind == "recursive":          # routing none: first use of each shared layer
        layer(out, sd, "first", "model.layers.0")
        for j in range(B):
            layer(out, sd, f"block.{j}", f"model.layers.{1 + j}")
        layer(out, sd, "last", f"model.layers.{c['layers'] - 1}")
    elif kind == "mor":                # expert choice, middle_cycle
        layer(out, sd, "first", "model.layers.0")
        for j in range(B):
            layer(out, sd, f"block.{j}", f"model.layers.1.block.{j}")
        layer(out, sd, "last", f"model.layers.{nr + 1}")
        for r in range(nr):
            out[f"model.layers.{1 + r}.mor_router.router.weight"] = sd[f"routers.{r}.weight"]
    elif kind == "tc":                 # token choice, middle_cycle
        layer(out, sd, "first", "model.layers.0")
        for j in range(B):
            layer(out, sd, f"block.{j}", f"model.layers.1.block_list.0.{j}")
        layer(out, sd, "last", "model.layers.2")
        out["model.layers.1.mor_router.router.weight"] = sd["router.weight"]
    return out


def config(kind, c, a):
    d = {"model_type": "llama" if kind == "vanilla" else "mor",
         "vocab_size": c["vocab"], "hidden_size": c["d"], "intermediate_size": c["ffn"],
         "num_hidden_layers": c["layers"], "num_attention_heads": c["heads"],
         "num_key_value_heads": c["kv_heads"], "head_dim": c["d"] // c["heads"],
         "rms_norm_eps": c["eps"], "rope_theta": c["theta"], "max_position_embeddings": a.max_pos,
         "tie_word_embeddings": True, "hidden_act": "silu"}
    nr = c["nr"]
    if kind == "recursive":
        d["mor"] = {"num_recursions": nr, "sharing": "middle_cycle", "routing": "none"}
    elif kind == "mor":
        cap = [1.0] * nr if a.full_depth else [(nr - r) / nr for r in range(nr)]
        d["mor"] = {"num_recursions": nr, "sharing": "middle_cycle", "routing": "expert_choice",
                    "router": "linear", "router_activation": "sigmoid", "alpha": c["alpha"],
                    "temperature": 1.0, "capacity": cap, "gating": "weighted",
                    "inference_routing": a.inference_routing, "threshold": a.threshold,
                    "kv_cache": "recursion_wise"}
    elif kind == "tc":
        d["mor"] = {"num_recursions": nr, "sharing": "middle_cycle", "routing": "token_choice",
                    "router": "linear", "router_activation": "softmax", "alpha": 1.0,
                    "temperature": 1.0, "gating": "weighted", "kv_cache": "recursion_wise"}
    if kind != "vanilla":
        d["weights"] = ["model.safetensors"]
    if a.tokenizer:
        d["tokenizer"] = "tokenizer.json"
    return d


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ckpt")
    p.add_argument("out")
    p.add_argument("--tokenizer", default="build-kjv/data/tokenizer.json")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--inference-routing", default="threshold", choices=["threshold", "top_k"])
    p.add_argument("--full-depth", action="store_true")
    p.add_argument("--dtype", default="BF16", choices=["BF16", "F32"])
    p.add_argument("--max-pos", type=int, default=256)
    a = p.parse_args()
    st = torch.load(a.ckpt)
    c, kind = st["cfg"], st["cfg"]["kind"]
    os.makedirs(a.out, exist_ok=True)
    write_safetensors(os.path.join(a.out, "model.safetensors"), names(kind, st["model"], c), a.dtype)
    cfg = config(kind, c, a)
    with open(os.path.join(a.out, "config.json" if kind == "vanilla" else "model.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    if a.tokenizer:
        shutil.copyfile(a.tokenizer, os.path.join(a.out, "tokenizer.json"))
    print(f"{a.out}: {kind}, step {st['step']}")


if __name__ == "__main__":
    main()
