"""Independent PyTorch reference of the MoR forward function of
docs/model-format.md: reads model.json + safetensors itself (no morc code),
computes in float64 and returns float32 logits and the depth reached per token.

Usage as a library:  m = load_model(dir); logits, depths = m.run(tokens, chunks)
Self-test:           /usr/bin/python3 tests/reference/mor_ref.py --self-test [examples_dir]
(checks invariants 2 and 3 against transformers' LlamaForCausalLM when installed).
"""

import json
import math
import os
import struct
import sys

import numpy as np
import torch

torch.set_num_threads(1)  # deterministic reductions, byte-identical reruns


class ModelError(Exception):
    pass


# ---------------------------------------------------------------- safetensors

def read_safetensors(path):
    """Returns {name: (np.float32 array, dtype string)}; every dtype decoded to f32."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ModelError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ModelError(f"{path}: header length {n} past end of file")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape = info["dtype"], list(info["shape"])
        b, e = info["data_offsets"]
        raw = data[base + b:base + e]
        count = int(np.prod(shape)) if shape else 1
        width = {"F32": 4, "F16": 2, "BF16": 2}.get(dtype)
        if width is None:
            raise ModelError(f"{path}: tensor '{name}': dtype {dtype} not accepted")
        if len(raw) != count * width or base + e > len(data):
            raise ModelError(f"{path}: tensor '{name}': data size does not match shape")
        if dtype == "F32":
            arr = np.frombuffer(raw, "<f4").astype(np.float32)
        elif dtype == "F16":
            arr = np.frombuffer(raw, "<f2").astype(np.float32)
        else:
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        out[name] = (arr.reshape(shape), dtype)
    return out


# ---------------------------------------------------------------- config

ROUTINGS = ("none", "expert_choice", "token_choice")
SHARINGS = ("cycle", "middle_cycle", "sequence", "middle_sequence")


class Config:
    """The description with every default of section 7 and the mor table applied."""

    def __init__(self, d):
        def req(k):
            if k not in d:
                raise ModelError(f"model.json: {k}: missing required key")
            return d[k]

        mt = d.get("model_type", "mor")
        if mt not in ("mor", "llama"):
            raise ModelError(f"model.json: model_type: expected 'mor' or 'llama'")
        if mt == "llama" and "mor" in d:
            raise ModelError("model.json: mor: not allowed in a llama description")
        self.V = int(req("vocab_size"))
        self.D = int(req("hidden_size"))
        self.I = int(req("intermediate_size"))
        self.L = int(req("num_hidden_layers"))
        self.H = int(req("num_attention_heads"))
        self.KV = int(d.get("num_key_value_heads", self.H))
        if self.H % self.KV:
            raise ModelError("model.json: num_key_value_heads: must divide num_attention_heads")
        if "head_dim" in d and d["head_dim"] is not None:
            self.hd = int(d["head_dim"])
        else:
            if self.D % self.H:
                raise ModelError("model.json: head_dim: hidden_size not divisible by heads")
            self.hd = self.D // self.H
        self.eps = float(d.get("rms_norm_eps", 1e-6))
        self.theta = float(d.get("rope_theta", 10000.0))
        self.max_pos = int(d.get("max_position_embeddings", 2048))
        self.tied = bool(d.get("tie_word_embeddings", False))
        if d.get("hidden_act", "silu") != "silu":
            raise ModelError("model.json: hidden_act: expected 'silu'")
        if d.get("rope_scaling") is not None:
            raise ModelError("model.json: rope_scaling: expected null")
        self.weights = d.get("weights")

        m = d.get("mor", {}) if mt == "mor" else {}
        self.N = int(m.get("num_recursions", 1))
        self.sharing = m.get("sharing", "middle_cycle" if mt == "mor" else "cycle")
        self.routing = m.get("routing", "none")
        if self.sharing not in SHARINGS:
            raise ModelError("model.json: mor.sharing: bad value")
        if self.routing not in ROUTINGS:
            raise ModelError("model.json: mor.routing: bad value")
        if self.routing != "none" and self.sharing not in ("cycle", "middle_cycle"):
            raise ModelError("model.json: mor.routing: needs cycle or middle_cycle sharing")
        self.router = m.get("router", "linear")
        ec = self.routing == "expert_choice"
        self.act = m.get("router_activation", "sigmoid" if ec else "softmax")
        if ec and self.act not in ("sigmoid", "tanh"):
            raise ModelError("model.json: mor.router_activation: bad value for expert_choice")
        if self.routing == "token_choice" and self.act not in ("softmax", "sigmoid"):
            raise ModelError("model.json: mor.router_activation: bad value for token_choice")
        default_alpha = 1.0 if (self.routing == "token_choice" and self.act == "softmax") else 0.1
        self.alpha = float(m.get("alpha", default_alpha))
        self.temperature = float(m.get("temperature", 1.0))
        self.capacity = [float(c) for c in m.get(
            "capacity", [(self.N - r) / self.N for r in range(self.N)])]
        if ec and len(self.capacity) != self.N:
            raise ModelError("model.json: mor.capacity: expected num_recursions values")
        self.gating = m.get("gating", "weighted")
        self.inference_routing = m.get("inference_routing", "threshold")
        if self.inference_routing == "top_k" and not ec:
            raise ModelError("model.json: mor.inference_routing: top_k needs expert_choice")
        self.threshold = float(m.get("threshold", 0.5 if self.act == "sigmoid" else 0.0))
        self.kv = m.get("kv_cache", "recursion_wise")
        if self.kv not in ("recursion_wise", "recursive_sharing"):
            raise ModelError("model.json: mor.kv_cache: bad value")

        middle = self.sharing.startswith("middle_")
        inner = self.L - 2 if middle else self.L
        if inner <= 0 or inner % self.N:
            raise ModelError("model.json: num_hidden_layers: does not split into N_r recursions")
        self.B = inner // self.N
        self.middle = middle

    @property
    def causal(self):
        return not (self.routing == "expert_choice" and self.inference_routing == "top_k")


# ---------------------------------------------------------------- weight names

LAYER_PARTS = ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
               "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
               "mlp.down_proj.weight", "input_layernorm.weight", "post_attention_layernorm.weight")


def layer_shapes(c):
    return {
        "self_attn.q_proj.weight": [c.H * c.hd, c.D],
        "self_attn.k_proj.weight": [c.KV * c.hd, c.D],
        "self_attn.v_proj.weight": [c.KV * c.hd, c.D],
        "self_attn.o_proj.weight": [c.D, c.H * c.hd],
        "mlp.gate_proj.weight": [c.I, c.D],
        "mlp.up_proj.weight": [c.I, c.D],
        "mlp.down_proj.weight": [c.D, c.I],
        "input_layernorm.weight": [c.D],
        "post_attention_layernorm.weight": [c.D],
    }


def stack_map(c):
    """Unrolled stack (between prefix and suffix) as a list of (rep, block layer j)."""
    n = c.N * c.B
    if c.sharing in ("cycle", "middle_cycle"):
        return [(i // c.B, i % c.B) for i in range(n)]
    return [(i % c.N, i // c.N) for i in range(n)]


def naming(c):
    """Returns (prefix names: {'pre'|'suf'|('blk',j): first name}, copies: [(name, key)],
    router names: list of {part: shape})."""
    first, copies, routers = {}, [], []
    if c.routing == "none":
        off = 1 if c.middle else 0
        if c.middle:
            first["pre"] = "model.layers.0"
            first["suf"] = f"model.layers.{c.L - 1}"
        for i, (_, j) in enumerate(stack_map(c)):
            name = f"model.layers.{i + off}"
            if ("blk", j) in first:
                copies.append((name, ("blk", j)))
            else:
                first[("blk", j)] = name
        return first, copies, routers
    base = 1 if c.middle else 0
    if c.middle:
        first["pre"] = "model.layers.0"
    ec = c.routing == "expert_choice"
    for j in range(c.B):
        first[("blk", j)] = (f"model.layers.{base}.block.{j}" if ec
                             else f"model.layers.{base}.block_list.0.{j}")
        for r in range(1, c.N):
            copies.append((f"model.layers.{base + r}.block.{j}" if ec
                           else f"model.layers.{base}.block_list.{r}.{j}", ("blk", j)))
    if c.middle:
        first["suf"] = f"model.layers.{base + c.N}" if ec else "model.layers.2"
    out = 1 if ec else c.N
    rnames = ([f"model.layers.{base + r}.mor_router" for r in range(c.N)] if ec
              else [f"model.layers.{base}.mor_router"])
    for rn in rnames:
        if c.router == "linear":
            routers.append({"kind": "linear", "w": (f"{rn}.router.weight", [out, c.D])})
        else:
            routers.append({"kind": "mlp", "w0": (f"{rn}.router.0.weight", [2 * c.D, c.D]),
                            "w2": (f"{rn}.router.2.weight", [out, 2 * c.D])})
    return first, copies, routers


def resolve_weight_files(mdir, c):
    if c.weights is not None:
        return [os.path.join(mdir, w) for w in c.weights]
    single = os.path.join(mdir, "model.safetensors")
    if os.path.exists(single):
        return [single]
    idx = os.path.join(mdir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        return [os.path.join(mdir, fn) for fn in sorted(set(wm.values()))]
    raise ModelError(f"{mdir}: no model.safetensors nor model.safetensors.index.json")


def bind_weights(c, named, dtype=torch.float64):
    """named: {name: (f32 array, dtype)}. Checks names, shapes, copies; returns the
    unique parameters as tensors of dtype (float64 for the goldens)."""
    first, copies, routers = naming(c)
    expected = {"model.embed_tokens.weight": [c.V, c.D], "model.norm.weight": [c.D]}
    ls = layer_shapes(c)
    for key, pre in first.items():
        for part in LAYER_PARTS:
            expected[f"{pre}.{part}"] = ls[part]
    for r in routers:
        for k, v in r.items():
            if k != "kind":
                expected[v[0]] = v[1]
    optional = {}
    for name, key in copies:
        for part in LAYER_PARTS:
            optional[f"{name}.{part}"] = (f"{first[key]}.{part}", ls[part])
    if c.tied:
        optional["lm_head.weight"] = ("model.embed_tokens.weight", [c.V, c.D])
    else:
        expected["lm_head.weight"] = [c.V, c.D]
    for n, s in expected.items():
        if n not in named:
            raise ModelError(f"tensor '{n}': missing")
        if list(named[n][0].shape) != s:
            raise ModelError(f"tensor '{n}': shape {list(named[n][0].shape)}, expected {s}")
    for n, (a, _) in named.items():
        if n in expected:
            continue
        if n not in optional:
            raise ModelError(f"tensor '{n}': unexpected")
        src, s = optional[n]
        if list(a.shape) != s:
            raise ModelError(f"tensor '{n}': shape {list(a.shape)}, expected {s}")
        if not np.array_equal(a, named[src][0]):
            raise ModelError(f"tensor '{n}' differs from '{src}'")

    def t(n):
        return torch.from_numpy(np.array(named[n][0], dtype=np.float64)).to(dtype)

    P = {"embed": t("model.embed_tokens.weight"), "norm": t("model.norm.weight")}
    P["lm_head"] = P["embed"] if c.tied else t("lm_head.weight")
    for key, pre in first.items():
        P[key] = {part: t(f"{pre}.{part}") for part in LAYER_PARTS}
    P["routers"] = [{k: (v if k == "kind" else t(v[0])) for k, v in r.items()} for r in routers]
    return P


# ---------------------------------------------------------------- the model

def rmsnorm(x, w, eps):
    return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


class Model:
    def __init__(self, config_dict, named, dtype=torch.float64):
        """dtype: compute precision; float32 is used to check that no routing decision
        flips under f32 rounding."""
        self.c = Config(config_dict)
        self.dt = dtype
        self.P = bind_weights(self.c, named, dtype)
        c = self.c
        i = torch.arange(c.hd // 2, dtype=torch.float64)
        self.inv_freq = c.theta ** (-2.0 * i / c.hd)
        self.trace = None
        self.reset()

    def reset(self):
        self.cache = {}   # key -> [K [m,KV,hd], V [m,KV,hd], pos [m]]
        self.next_pos = 0
        self.margins = []  # (kind, margin) of every routing decision

    # -- pieces
    def rope(self, x, pos):  # x [n, h, hd]
        ang = pos.to(torch.float64)[:, None] * self.inv_freq[None, :]
        cos = torch.cos(ang)[:, None, :].to(self.dt)
        sin = torch.sin(ang)[:, None, :].to(self.dt)
        half = self.c.hd // 2
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    def layer(self, p, x, pos, key, share=False):
        """One decoder layer on the rows x at positions pos. key names its KV cache;
        share=True: queries only, attending to cache[key] without storing."""
        c = self.c
        n = x.shape[0]
        if n == 0:
            return x
        a = rmsnorm(x, p["input_layernorm.weight"], c.eps)
        q = self.rope((a @ p["self_attn.q_proj.weight"].T).view(n, c.H, c.hd), pos)
        if not share:
            k = self.rope((a @ p["self_attn.k_proj.weight"].T).view(n, c.KV, c.hd), pos)
            v = (a @ p["self_attn.v_proj.weight"].T).view(n, c.KV, c.hd)
            if key in self.cache:
                K, V, Pp = self.cache[key]
                self.cache[key] = [torch.cat([K, k]), torch.cat([V, v]), torch.cat([Pp, pos])]
            else:
                self.cache[key] = [k, v, pos.clone()]
        K, V, Pp = self.cache[key]
        rep = c.H // c.KV
        Kh, Vh = K.repeat_interleave(rep, dim=1), V.repeat_interleave(rep, dim=1)
        s = torch.einsum("nhd,mhd->hnm", q, Kh) / math.sqrt(c.hd)
        mask = Pp[None, :] <= pos[:, None]
        s = s.masked_fill(~mask[None], float("-inf"))
        w = torch.softmax(s, dim=-1)
        o = torch.einsum("hnm,mhd->nhd", w, Vh).reshape(n, c.H * c.hd)
        h = x + o @ p["self_attn.o_proj.weight"].T
        m = rmsnorm(h, p["post_attention_layernorm.weight"], c.eps)
        g = torch.nn.functional.silu(m @ p["mlp.gate_proj.weight"].T)
        return h + (g * (m @ p["mlp.up_proj.weight"].T)) @ p["mlp.down_proj.weight"].T

    def block(self, x, pos, r):
        """The shared block at depth r, with this model's KV strategy."""
        rs = self.c.kv == "recursive_sharing"
        for j in range(self.c.B):
            x = self.layer(self.P[("blk", j)], x, pos, ("blk", 0 if rs else r, j),
                           share=rs and r > 0)
        return x

    def router(self, idx, x):
        """Router idx on rows x (already divided by temperature): pre-activation z."""
        rp = self.P["routers"][idx]
        if rp["kind"] == "linear":
            feat = x
            z = feat @ rp["w"].T
        else:
            feat = torch.nn.functional.gelu(x @ rp["w0"].T)  # exact erf GELU
            z = feat @ rp["w2"].T
        if self.trace is not None:
            self.trace.setdefault(idx, []).append(feat.clone())
        return z

    # -- routing
    def expert_choice(self, x, pos, T):
        c = self.c
        n = x.shape[0]
        depth = np.zeros(n, dtype=np.int64)
        active = torch.arange(n)
        rs = c.kv == "recursive_sharing"
        for r in range(c.N):
            if len(active) == 0:
                break
            z = self.router(r, x[active] / c.temperature)[:, 0]
            s = torch.sigmoid(z) if c.act == "sigmoid" else torch.tanh(z)
            if c.inference_routing == "threshold":
                if c.capacity[r] >= 1.0:
                    sel = torch.ones(len(active), dtype=torch.bool)
                else:
                    sel = s >= c.threshold
                    self.margins += [("threshold", float(abs(v - c.threshold))) for v in s]
            else:
                k = max(1, math.floor(c.capacity[r] * T))
                k = min(k, len(active))
                score = (c.alpha * s).tolist()
                order = sorted(range(len(active)), key=lambda i: (-score[i], i))
                sel = torch.zeros(len(active), dtype=torch.bool)
                sel[order[:k]] = True
                if k < len(active):
                    self.margins.append(("top_k", score[order[k - 1]] - score[order[k]]))
            chosen = active[sel]
            if rs and r == 0:
                y = self.block(x[active], pos[active], 0)[sel]
            else:
                y = self.block(x[chosen], pos[chosen], r)
            if c.gating == "weighted":
                g = (c.alpha * s[sel])[:, None]
                x[chosen] = x[chosen] + g * y
            else:
                x[chosen] = x[chosen] + y
            depth[chosen.numpy()] += 1
            active = chosen
        return x, depth

    def token_choice(self, x, pos):
        c = self.c
        z = self.router(0, x / c.temperature)
        p = (torch.softmax(z, dim=-1) if c.act == "softmax" else torch.sigmoid(z)) * c.alpha
        pn = p.numpy()
        d = np.argmax(pn, axis=1)  # first maximum: ties to the lower index
        for row in pn:
            srt = np.sort(row)[::-1]
            if len(srt) > 1:
                self.margins.append(("argmax", float(srt[0] - srt[1])))
        dt = torch.from_numpy(d)
        w = p[torch.arange(len(d)), dt]
        x1, cur, out = x.clone(), x.clone(), x.clone()
        for r in range(c.N):
            idx = torch.nonzero(dt >= r)[:, 0]
            if len(idx) == 0:
                break
            y = self.block(cur[idx], pos[idx], r)
            stop = dt[idx] == r
            ti = idx[stop]
            out[ti] = x1[ti] + (w[ti][:, None] * y[stop] if c.gating == "weighted" else y[stop])
            cur[idx[~stop]] = y[~stop]
        return out, d + 1

    def forward(self, tokens):
        """One forward call; caches persist. Returns (logits f64 [T,V], depth [T])."""
        c = self.c
        T = len(tokens)
        pos = torch.arange(self.next_pos, self.next_pos + T)
        if T and int(pos[-1]) >= c.max_pos:
            raise ModelError("position at or beyond max_position_embeddings")
        if not c.causal and self.next_pos > 0:
            raise ModelError("top_k routing needs a call without cached positions")
        x = self.P["embed"][torch.tensor(tokens, dtype=torch.long)].clone()
        if c.middle:
            x = self.layer(self.P["pre"], x, pos, ("pre",))
        if c.routing == "none":
            rs = c.kv == "recursive_sharing"
            for rep, j in stack_map(c):
                x = self.layer(self.P[("blk", j)], x, pos, ("blk", 0 if rs else rep, j),
                               share=rs and rep > 0)
            depth = np.full(T, c.N, dtype=np.int64)
        elif c.routing == "expert_choice":
            x, depth = self.expert_choice(x, pos, T)
        else:
            x, depth = self.token_choice(x, pos)
        if c.middle:
            x = self.layer(self.P["suf"], x, pos, ("suf",))
        x = rmsnorm(x, self.P["norm"], c.eps)
        self.next_pos += T
        return x @ self.P["lm_head"].T, depth

    def run(self, tokens, chunks=None):
        """Fresh state, then successive forward calls of the given chunk sizes.
        Returns (logits float32 numpy [T,V], depths int numpy [T])."""
        self.reset()
        chunks = chunks or [len(tokens)]
        assert sum(chunks) == len(tokens)
        outs, deps, i = [], [], 0
        for n in chunks:
            lg, dp = self.forward(tokens[i:i + n])
            outs.append(lg)
            deps.append(dp)
            i += n
        return torch.cat(outs).numpy().astype(np.float32), np.concatenate(deps)


def load_model(mdir, json_name=None, dtype=torch.float64):
    for cand in ([json_name] if json_name else ["model.json", "config.json"]):
        path = os.path.join(mdir, cand)
        if os.path.exists(path):
            break
    else:
        raise ModelError(f"{mdir}: no model.json or config.json")
    with open(path) as f:
        d = json.load(f)
    c = Config(d)
    named = {}
    for wf in resolve_weight_files(mdir, c):
        for n, v in read_safetensors(wf).items():
            if n in named:
                raise ModelError(f"tensor '{n}': present in two files")
            named[n] = v
    return Model(d, named, dtype)


# ---------------------------------------------------------------- self-test

def hf_llama_logits(m, tokens, unroll):
    """transformers' LlamaForCausalLM with this model's weights; unroll: the shared
    layers copied into every unrolled layer (routing none, cycle-style sharing)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    c = m.c
    hc = LlamaConfig(vocab_size=c.V, hidden_size=c.D, intermediate_size=c.I,
                     num_hidden_layers=c.L, num_attention_heads=c.H,
                     num_key_value_heads=c.KV, rms_norm_eps=c.eps, rope_theta=c.theta,
                     max_position_embeddings=c.max_pos, tie_word_embeddings=c.tied,
                     attn_implementation="eager")
    assert c.hd * c.H == c.D, "transformers 4.39 Llama needs head_dim = hidden/heads"
    hf = LlamaForCausalLM(hc).double().eval()
    sd = {"model.embed_tokens.weight": m.P["embed"], "model.norm.weight": m.P["norm"],
          "lm_head.weight": m.P["lm_head"]}
    layers = ([m.P["pre"]] if c.middle else []) + [m.P[("blk", j)] for _, j in unroll] + \
        ([m.P["suf"]] if c.middle else [])
    for l, p in enumerate(layers):
        for part in LAYER_PARTS:
            sd[f"model.layers.{l}.{part}"] = p[part]
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    with torch.no_grad():
        return hf(torch.tensor([tokens])).logits[0].numpy()


def self_test(examples_dir):
    try:
        import transformers  # noqa: F401
    except ImportError as e:  # absent, or its version check failed (e.g. tokenizers)
        print(f"self-test: transformers not importable ({str(e).splitlines()[0][:80]}), "
              "invariants 2/3 vs Hugging Face skipped")
        return True
    ok = True
    rng = np.random.default_rng(7)
    for v in sorted(os.listdir(examples_dir)):
        mdir = os.path.join(examples_dir, v)
        if not os.path.isdir(mdir):
            continue
        m = load_model(mdir)
        c = m.c
        if c.routing != "none" or c.kv != "recursion_wise" or c.hd * c.H != c.D:
            continue
        toks = rng.integers(0, c.V, size=24).tolist()
        ours, _ = m.run(toks)
        theirs = hf_llama_logits(m, toks, stack_map(c))
        err = float(np.abs(ours - theirs).max())
        good = err < 1e-4
        ok &= good
        print(f"self-test: {v}: max |ref - LlamaForCausalLM| = {err:.2e} {'ok' if good else 'FAIL'}")
    return ok


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--self-test":
        here = os.path.dirname(os.path.abspath(__file__))
        ex = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "..", "examples")
        sys.exit(0 if self_test(ex) else 1)
    print(__doc__)
