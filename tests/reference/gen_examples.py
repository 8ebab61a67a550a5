"""Writes the small example models of examples/<variant>/ (model.json or a Hugging
Face config.json, plus safetensors written by hand) from fixed seeds. Routers
are calibrated on the golden tokens so that roughly half of the active tokens
pass each threshold, with a clear margin around every routing decision.

Run: /usr/bin/python3 tests/reference/gen_examples.py   (then make_golden.py)
"""

import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples")
sys.path.insert(0, HERE)
import mor_ref  # noqa: E402

NUM_TOKENS = 20
WEIGHT_STD = 0.2


def seed_of(*parts):
    return zlib.crc32("/".join(parts).encode())


def tokens_for(variant):
    """The golden token ids of a variant (deterministic)."""
    src = "none_cycle" if variant == "llama_unrolled_of_cycle" else variant
    rng = np.random.default_rng(seed_of("tokens", src))
    return [int(t) for t in rng.integers(0, 128, size=NUM_TOKENS)]


# ---------------------------------------------------------------- dtypes

def to_bf16(a):
    """Round f32 values to the nearest bf16 (ties to even); returns f32 values."""
    u = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def round_to(a, dtype):
    a = np.asarray(a, dtype=np.float32)
    if dtype == "F16":
        return a.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return to_bf16(a)
    return a


def encode(a, dtype):
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        h = a.astype("<f2")
        assert np.array_equal(h.astype(np.float32), a), "value not representable in F16"
        return h.tobytes()
    bits = a.view(np.uint32)
    assert not (bits & 0xFFFF).any(), "value not representable in BF16"
    return (bits >> 16).astype("<u2").tobytes()


def write_safetensors(path, tensors):
    """tensors: {name: (f32 array, dtype)}; data laid out in sorted name order."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        arr, dt = tensors[name]
        b = encode(arr, dt)
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return off


def write_json(path, d):
    with open(path, "w") as f:
        f.write(json.dumps(d, indent=2) + "\n")


# ---------------------------------------------------------------- variants

def cfg(L, mor, tied=True, eps=1e-5, drop=(), **over):
    d = {"model_type": "mor", "vocab_size": 128, "hidden_size": 32, "intermediate_size": 64,
         "num_hidden_layers": L, "num_attention_heads": 4, "num_key_value_heads": 2,
         "head_dim": 8, "rms_norm_eps": eps, "rope_theta": 10000.0,
         "max_position_embeddings": 64, "tie_word_embeddings": tied, "hidden_act": "silu"}
    d.update({k: v for k, v in over.items() if k != "weights"})
    d["mor"] = mor
    d["weights"] = over.get("weights", ["model.safetensors"])
    for k in drop:
        del d[k]
    return d


def hf_cfg(L, kv, tied, eps, torch_dtype):
    return {"architectures": ["LlamaForCausalLM"], "attention_bias": False,
            "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
            "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02,
            "intermediate_size": 64, "max_position_embeddings": 64, "model_type": "llama",
            "num_attention_heads": 4, "num_hidden_layers": L, "num_key_value_heads": kv,
            "pretraining_tp": 1, "rms_norm_eps": eps, "rope_scaling": None,
            "rope_theta": 10000.0, "tie_word_embeddings": tied, "torch_dtype": torch_dtype,
            "transformers_version": "4.39.3", "use_cache": True, "vocab_size": 128}


def EC(n, **kw):
    return dict({"num_recursions": n, "sharing": "middle_cycle", "routing": "expert_choice"}, **kw)


def TC(n, **kw):
    return dict({"num_recursions": n, "sharing": "middle_cycle", "routing": "token_choice"}, **kw)


def NONE(n, sharing, **kw):
    return dict({"num_recursions": n, "sharing": sharing, "routing": "none"}, **kw)


# Each: name, what it covers, description, options.
#   dtype: of every tensor; copies: store the later copies of shared layers, with
#   copy_dtype for the first copy (same values); tied_head: store lm_head too when tied;
#   files: split into these weight files ("weights" list) or "index" (HF shards).
VARIANTS = [
    ("none_cycle", "routing none, cycle sharing, N_r 3 x B 2 (L 6), tied, F32; source of "
     "llama_unrolled_of_cycle (invariant 3)",
     cfg(6, NONE(3, "cycle")), {}),
    ("none_middle_cycle", "routing none, middle_cycle, N_r 2 x B 2 (L 6), untied, eps 1e-6",
     cfg(6, NONE(2, "middle_cycle"), tied=False, eps=1e-6), {}),
    ("none_sequence", "routing none, sequence sharing, N_r 2 x B 2 (L 4): layers 0,0,1,1",
     cfg(4, NONE(2, "sequence")), {}),
    ("none_middle_sequence", "routing none, middle_sequence, N_r 3 x B 1 (L 5), untied; "
     "weights split over two files listed in `weights`",
     cfg(5, NONE(3, "middle_sequence"), tied=False,
         weights=["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]),
     {"files": "split"}),
    ("none_n1", "routing none, N_r 1, cycle, L 2; num_key_value_heads and head_dim absent "
     "(MHA, head_dim = hidden/heads); invariant 2 (== LlamaForCausalLM)",
     cfg(2, NONE(1, "cycle"), tied=False, eps=1e-6, drop=("num_key_value_heads", "head_dim")),
     {}),
    ("none_recursive_sharing", "routing none, middle_cycle N_r 3 x B 2 (L 8), "
     "kv_cache recursive_sharing (depth >= 1 attends to depth-0 KV)",
     cfg(8, NONE(3, "middle_cycle", kv_cache="recursive_sharing")), {}),
    ("none_sequence_recursive_sharing", "routing none, sequence N_r 2 x B 2 (L 4), "
     "recursive_sharing (repetition 1 attends to repetition 0's KV)",
     cfg(4, NONE(2, "sequence", kv_cache="recursive_sharing")), {}),
    ("none_stored_copies", "routing none, cycle N_r 2 x B 2 (L 4), every unrolled "
     "model.layers.{l} stored (copies identical; layer 2 stored as F16 with the same values); "
     "tied with lm_head.weight present (== embed)",
     cfg(4, NONE(2, "cycle")), {"copies": True, "copy_dtype": "F16", "tied_head": True}),
    ("ec_linear_sigmoid_threshold", "expert_choice, middle_cycle N_r 3 x B 2 (L 8), linear "
     "router, sigmoid, threshold 0.5, gating weighted, alpha 0.1, default capacities; every "
     "mor key written out (the doc's example)",
     cfg(8, EC(3, router="linear", router_activation="sigmoid", alpha=0.1, temperature=1.0,
               capacity=[1.0, 2.0 / 3.0, 1.0 / 3.0], gating="weighted",
               inference_routing="threshold", threshold=0.5, kv_cache="recursion_wise")), {}),
    ("ec_linear_tanh_threshold", "expert_choice, middle_cycle N_r 4 x B 1 (L 6), tanh, default "
     "threshold (0.0), alpha 0.5, temperature 2.0, untied",
     cfg(6, EC(4, router_activation="tanh", alpha=0.5, temperature=2.0), tied=False), {}),
    ("ec_mlp_sigmoid_topk", "expert_choice, middle_cycle N_r 3 x B 2 (L 8), MLP router "
     "(router.0 / GELU / router.2), sigmoid, inference top_k, capacity [1, 0.5, 0.25]; "
     "non-causal",
     cfg(8, EC(3, router="mlp", inference_routing="top_k", capacity=[1.0, 0.5, 0.25])), {}),
    ("ec_tanh_topk_negalpha", "expert_choice, middle_cycle N_r 2 x B 1 (L 4), tanh, top_k with "
     "alpha -0.2 (ranking by alpha*s, so the lowest s wins); non-causal",
     cfg(4, EC(2, router_activation="tanh", inference_routing="top_k", alpha=-0.2)), {}),
    ("ec_gating_none", "expert_choice, middle_cycle N_r 2 x B 2 (L 6), gating none "
     "(x + Block(x)), threshold 0.55, capacity [0.75, 0.5] (depth 0 is thresholded too)",
     cfg(6, EC(2, gating="none", threshold=0.55, capacity=[0.75, 0.5])), {}),
    ("ec_cycle", "expert_choice, cycle sharing N_r 3 x B 1 (L 3), routers "
     "model.layers.{r}.mor_router, untied, BF16",
     cfg(3, EC(3, sharing="cycle"), tied=False), {"dtype": "BF16"}),
    ("ec_recursive_sharing", "expert_choice, middle_cycle N_r 3 x B 2 (L 8), kv_cache "
     "recursive_sharing, capacity [0.8, 0.5, 0.3] (tokens not chosen at depth 0 still fill "
     "the depth-0 cache, depth 0)",
     cfg(8, EC(3, kv_cache="recursive_sharing", capacity=[0.8, 0.5, 0.3])), {}),
    ("ec_defaults", "expert_choice with every default: mor has only num_recursions 2 and "
     "routing (sharing middle_cycle, linear, sigmoid, alpha 0.1, threshold 0.5, capacity "
     "[1, 0.5]); no head_dim, rms_norm_eps, rope_theta, max_position_embeddings, "
     "tie_word_embeddings (untied), hidden_act nor weights keys; F16",
     cfg(6, {"num_recursions": 2, "routing": "expert_choice"},
         drop=("head_dim", "rms_norm_eps", "rope_theta", "max_position_embeddings",
               "tie_word_embeddings", "hidden_act", "weights")), {"dtype": "F16"}),
    ("ec_stored_copies", "expert_choice, middle_cycle N_r 3 x B 1 (L 5) with the block copies "
     "model.layers.{2,3}.block.0 stored (identical; layers.2 copy in BF16 with the same "
     "values), tied with lm_head.weight present",
     cfg(5, EC(3)), {"copies": True, "copy_dtype": "BF16", "tied_head": True}),
    ("tc_softmax", "token_choice, middle_cycle N_r 3 x B 2 (L 8), linear router [3, D], "
     "softmax, default alpha 1.0, gating weighted",
     cfg(8, TC(3)), {}),
    ("tc_sigmoid", "token_choice, cycle N_r 2 x B 2 (L 4), sigmoid, default alpha 0.1, gating "
     "none, untied",
     cfg(4, TC(2, sharing="cycle", router_activation="sigmoid", gating="none"), tied=False),
     {}),
    ("tc_mlp", "token_choice, middle_cycle N_r 4 x B 1 (L 6), MLP router, softmax, temperature "
     "0.5, alpha 2.0; head_dim 16 != hidden/heads, one KV head (GQA 4:1); BF16",
     cfg(6, TC(4, router="mlp", temperature=0.5, alpha=2.0), num_key_value_heads=1,
         head_dim=16), {"dtype": "BF16"}),
    ("tc_recursive_sharing", "token_choice, middle_cycle N_r 3 x B 1 (L 5), kv_cache "
     "recursive_sharing",
     cfg(5, TC(3, kv_cache="recursive_sharing")), {}),
    ("tc_stored_copies", "token_choice, cycle N_r 2 x B 2 (L 4), block_list.1.{j} copies "
     "stored (identical), F16",
     cfg(4, TC(2, sharing="cycle")), {"dtype": "F16", "copies": True}),
    ("llama_plain", "a plain Hugging Face Llama config.json (model_type llama, no mor, L 3, "
     "MHA, untied, eps 1e-6), weights model.safetensors (default), BF16; invariant 2",
     hf_cfg(3, 4, False, 1e-6, "bfloat16"), {"dtype": "BF16"}),
    ("llama_unrolled_of_cycle", "Llama config.json (L 6) whose layers are none_cycle's shared "
     "layers copied into every unrolled layer; sharded model.safetensors.index.json; "
     "invariant 3 (same logits as none_cycle)",
     hf_cfg(6, 2, True, 1e-5, "float32"), {"files": "index"}),
]


# ---------------------------------------------------------------- weights

def init(variant, name, shape, dtype):
    rng = np.random.default_rng(seed_of("weights", variant, name))
    if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
        a = 1.0 + 0.1 * rng.standard_normal(shape)
    else:
        a = WEIGHT_STD * rng.standard_normal(shape)
    return round_to(a, dtype)


def build_named(variant, d, opts):
    """Every tensor of the variant's files: {name: (f32 values, dtype)}."""
    c = mor_ref.Config(d)
    dtype = opts.get("dtype", "F32")
    first, copies, routers = mor_ref.naming(c)
    ls = mor_ref.layer_shapes(c)
    named = {}

    def put(name, shape, dt=dtype, values_dtype=None):
        a = init(variant, name, shape, dt)
        if values_dtype:
            a = round_to(a, values_dtype)
        named[name] = (a, dt)

    put("model.embed_tokens.weight", [c.V, c.D])
    put("model.norm.weight", [c.D])
    if not c.tied:
        put("lm_head.weight", [c.V, c.D])
    elif opts.get("tied_head"):
        named["lm_head.weight"] = named["model.embed_tokens.weight"]
    copy_dt = opts.get("copy_dtype")
    for key, pre in first.items():
        for part in mor_ref.LAYER_PARTS:
            put(f"{pre}.{part}", ls[part], values_dtype=copy_dt if key != "pre" and
                key != "suf" else None)
    if opts.get("copies"):
        for i, (name, key) in enumerate(copies):
            for part in mor_ref.LAYER_PARTS:
                src = named[f"{first[key]}.{part}"][0]
                dt = copy_dt if (copy_dt and i == 0) else dtype
                named[f"{name}.{part}"] = (src, dt)
    for r in routers:
        for k, v in r.items():
            if k != "kind":
                put(v[0], v[1])
    return named


def unrolled_llama_of(src_named, src_cfg):
    """llama_unrolled_of_cycle: the cycle model's shared layers in every unrolled layer."""
    c = mor_ref.Config(src_cfg)
    first, _, _ = mor_ref.naming(c)
    named = {k: v for k, v in src_named.items() if not k.startswith("model.layers.")}
    for l, (_, j) in enumerate(mor_ref.stack_map(c)):
        for part in mor_ref.LAYER_PARTS:
            named[f"model.layers.{l}.{part}"] = src_named[f"{first[('blk', j)]}.{part}"]
    return named


# ---------------------------------------------------------------- calibration

def act(z, kind):
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if kind == "tanh":
        return np.tanh(z)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def router_out_name(r):
    return r["w"][0] if r["kind"] == "linear" else r["w2"][0]


def trace_features(d, named, tokens):
    m = mor_ref.Model(d, named)
    m.trace = {}
    m.run(tokens)
    return {k: v[0].numpy() for k, v in m.trace.items()}


def candidates(w, F, betas, dtype):
    """Router output rows a*w + beta*u (u: the mean feature direction), rounded."""
    z0 = F @ w.T
    a = 1.0 / max(float(z0.std()), 1e-6)
    fbar = F.mean(0)
    u = fbar / float(fbar @ fbar)
    W = a * w[None] + betas[..., None] * u  # [nc, out, F]
    return round_to(np.round(W, 4), dtype)


def pick(feasible, margin):
    idx = np.flatnonzero(feasible)
    if len(idx) == 0:
        return None
    return int(idx[np.argmax(margin[idx])])


def calibrate_expert(variant, d, named, tokens):
    c = mor_ref.Config(d)
    _, _, routers = mor_ref.naming(c)
    for r in range(c.N):
        F = trace_features(d, named, tokens).get(r)
        if F is None:
            return
        wname = router_out_name(routers[r])
        w, dt = named[wname]
        betas = np.round(np.arange(-600, 601) * 0.01, 2)[:, None]   # [nc, 1]
        W = candidates(w.astype(np.float64), F, betas, dt)            # [nc, 1, F]
        S = act(np.einsum("tf,cf->ct", F, W[:, 0, :].astype(np.float64)), c.act)
        n = F.shape[0]
        if c.inference_routing == "top_k":
            k = min(max(1, int(np.floor(c.capacity[r] * NUM_TOKENS))), n)
            srt = -np.sort(-(c.alpha * S), axis=1)
            margin = srt[:, k - 1] - srt[:, k] if k < n else -np.abs(betas[:, 0])
            i = pick(np.ones(len(S), bool), margin)
        else:
            frac = (S >= c.threshold).mean(1)
            margin = np.abs(S - c.threshold).min(1)
            i = None
            for lo, hi in ((0.35, 0.65), (0.25, 0.75)):
                i = i if i is not None else pick((frac >= lo) & (frac <= hi), margin)
            if i is None:
                i = pick(np.abs(frac - 0.5) == np.abs(frac - 0.5).min(), margin)
        named[wname] = (W[i], dt)


def calibrate_token(variant, d, named, tokens):
    c = mor_ref.Config(d)
    _, _, routers = mor_ref.naming(c)
    F = trace_features(d, named, tokens)[0]
    wname = router_out_name(routers[0])
    w, dt = named[wname]
    rng = np.random.default_rng(seed_of("calibrate", variant))
    betas = rng.uniform(-3.0, 3.0, size=(3000, c.N))
    betas[0] = 0.0
    W = candidates(w.astype(np.float64), F, betas, dt)               # [nc, N, F]
    P = act(np.einsum("tf,cnf->ctn", F, W.astype(np.float64)), c.act) * c.alpha
    dsel = np.argmax(P, axis=2)                                       # [nc, T]
    counts = np.stack([(dsel == k).sum(1) for k in range(c.N)], 1)
    srt = np.sort(P, axis=2)
    margin = (srt[:, :, -1] - srt[:, :, -2]).min(1)
    need = max(1, int(0.6 * F.shape[0] / c.N))  # each depth >= 60% of an even share
    i = pick(counts.min(1) >= need, margin)
    if i is None:
        i = pick(counts.min(1) == counts.min(1).max(), margin)
    named[wname] = (W[i], dt)


# ---------------------------------------------------------------- writing

def write_variant(name, d, named, opts, about):
    out = os.path.join(EXAMPLES, name)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    is_llama = d.get("model_type") == "llama"
    write_json(os.path.join(out, "config.json" if is_llama else "model.json"), d)
    files = opts.get("files")
    names = sorted(named)
    if files == "split":
        half = len(names) // 2
        for fn, part in zip(d["weights"], (names[:half], names[half:])):
            write_safetensors(os.path.join(out, fn), {k: named[k] for k in part})
    elif files == "index":
        shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        half = len(names) // 2
        wm, total = {}, 0
        for fn, part in zip(shards, (names[:half], names[half:])):
            total += write_safetensors(os.path.join(out, fn), {k: named[k] for k in part})
            wm.update({k: fn for k in part})
        write_json(os.path.join(out, "model.safetensors.index.json"),
                   {"metadata": {"total_size": total}, "weight_map": wm})
    else:
        fn = d.get("weights", ["model.safetensors"])[0]
        write_safetensors(os.path.join(out, fn), named)


def write_readme(rows):
    lines = [
        "# Example models",
        "",
        "Small MoR models (vocab 128, hidden 32, intermediate 64, 4 heads, 2 KV heads,",
        "head_dim 8 unless noted) with random weights (normal, std 0.2; norms 1 + N(0, 0.1)).",
        "They are generated, byte for byte, by `tests/reference/gen_examples.py`; their",
        "golden logits are in `tests/golden/` (see its README). Routers are calibrated on",
        "the golden tokens so that about half of the active tokens pass each threshold.",
        "",
        "Each folder holds `model.json` (or a Hugging Face `config.json` for the `llama_*`",
        "variants) and its safetensors file(s).",
        "",
        "| variant | covers |",
        "|---|---|",
    ]
    lines += [f"| `{n}` | {a} |" for n, a in rows]
    lines += ["", "Regenerate: `/usr/bin/python3 tests/reference/gen_examples.py && "
              "/usr/bin/python3 tests/reference/make_golden.py`", ""]
    with open(os.path.join(EXAMPLES, "README.md"), "w") as f:
        f.write("\n".join(lines))


def main():
    os.makedirs(EXAMPLES, exist_ok=True)
    made = {}
    for name, about, d, opts in VARIANTS:
        if name == "llama_unrolled_of_cycle":
            src_name, src_d = "none_cycle", made["none_cycle"][0]
            named = unrolled_llama_of(made[src_name][1], src_d)
        else:
            named = build_named(name, d, opts)
            c = mor_ref.Config(d)
            if c.routing == "expert_choice":
                calibrate_expert(name, d, named, tokens_for(name))
            elif c.routing == "token_choice":
                calibrate_token(name, d, named, tokens_for(name))
        mor_ref.Model(d, named)  # names, shapes and copies check
        made[name] = (d, named)
        write_variant(name, d, named, opts, about)
        print(f"{name}: {len(named)} tensors")
    write_readme([(n, a) for n, a, _, _ in VARIANTS])


if __name__ == "__main__":
    main()
