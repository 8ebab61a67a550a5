"""The PyTorch models of the KJV study: a Llama-style decoder (pre-norm, RMSNorm,
RoPE half-split, GQA, SwiGLU, tied embeddings) in three kinds:

  vanilla    num_layers unique layers (a plain Llama)
  recursive  middle-cycle sharing: layer 0, a block of B layers applied N_r times
             to every token, the last layer (no router)
  tc         the same sharing with token-choice routing: one linear router [N_r, D],
             softmax, alpha 1; each token picks its depth d = argmax up front,
             runs the block d+1 times and ends at x + p_d * Block^(d+1)(x); a
             Switch-style balancing loss (N_r * sum_r f_r P_r) keeps depths even
             (in training the block runs densely with the finished tokens masked out
             of attention, which computes the same function)
  mor        the same sharing with expert-choice routing (Mixture-of-Recursions,
             Bae et al. 2025): per recursion r a linear router [1, D], sigmoid,
             alpha-scaled gate, top-k per sequence with k = floor(cap_r * T)
             chosen among the tokens still active, capacities (N_r - r) / N_r;
             x <- x + alpha * s * Block(x) for the chosen tokens (Block holds its
             residuals), others keep x and stop.  An auxiliary BCE loss pushes the
             router's sigmoid to 1 for chosen and 0 for unchosen active tokens.

This follows docs/model-format.md (sections 2 and 4) so that the exported
weights compute the same function under morc.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Cfg:
    def __init__(self, **kw):
        self.kind = "mor"           # mor | recursive | vanilla
        self.vocab = 2048
        self.d = 256
        self.ffn = 704
        self.layers = 8             # unrolled layers
        self.heads = 4
        self.kv_heads = 2
        self.nr = 3                 # recursions (mor, recursive)
        self.ctx = 256
        self.eps = 1e-5
        self.theta = 10000.0
        self.alpha = 0.1            # mor (expert choice, sigmoid); tc uses 1.0 (softmax)
        self.__dict__.update(kw)

    @property
    def hd(self):
        return self.d // self.heads

    @property
    def block(self):
        return (self.layers - 2) // self.nr

    @property
    def capacity(self):
        return [(self.nr - r) / self.nr for r in range(self.nr)]


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_tables(cfg, device=None):
    hd = cfg.hd
    inv = cfg.theta ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2 / hd)
    ang = torch.arange(cfg.ctx, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def rope(x, cos, sin):
    # x [B, h, T, hd]; cos/sin [B, 1, T, hd/2]
    h = x.shape[-1] // 2
    a, b = x[..., :h], x[..., h:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


class Attn(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, hd = cfg.d, cfg.hd
        self.q_proj = nn.Linear(d, cfg.heads * hd, bias=False)
        self.k_proj = nn.Linear(d, cfg.kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(d, cfg.kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(cfg.heads * hd, d, bias=False)

    def forward(self, x, cos, sin, mask):
        c = self.cfg
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, c.heads, c.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, c.kv_heads, c.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, c.kv_heads, c.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        rep = c.heads // c.kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(c.hd))
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        return self.o_proj((att @ v).transpose(1, 2).reshape(B, T, c.heads * c.hd))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d, cfg.ffn, bias=False)
        self.up_proj = nn.Linear(cfg.d, cfg.ffn, bias=False)
        self.down_proj = nn.Linear(cfg.ffn, cfg.d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self_attn = Attn(cfg)
        self.mlp = MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.d, cfg.eps)
        self.post_attention_layernorm = RMSNorm(cfg.d, cfg.eps)

    def forward(self, x, cos, sin, mask):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return h + self.mlp(self.post_attention_layernorm(h))


class Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.d)
        if cfg.kind == "vanilla":
            self.layers = nn.ModuleList([Layer(cfg) for _ in range(cfg.layers)])
        else:
            self.first = Layer(cfg)
            self.block = nn.ModuleList([Layer(cfg) for _ in range(cfg.block)])
            self.last = Layer(cfg)
            if cfg.kind == "mor":
                self.routers = nn.ModuleList([nn.Linear(cfg.d, 1, bias=False)
                                              for _ in range(cfg.nr)])
            if cfg.kind == "tc":
                self.router = nn.Linear(cfg.d, cfg.nr, bias=False)
        self.norm = RMSNorm(cfg.d, cfg.eps)
        cos, sin = rope_tables(cfg)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.apply(self._init)

    def _init(self, m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def _tables(self, pos):
        # pos [B, T] absolute positions -> cos/sin [B, 1, T, hd/2], causal mask [T, T]
        cos, sin = self.cos[pos].unsqueeze(1), self.sin[pos].unsqueeze(1)
        T = pos.shape[1]
        mask = torch.ones(T, T, dtype=torch.bool, device=pos.device).triu(1)
        return cos, sin, mask

    def forward(self, ids, mode="top_k", threshold=0.5, stats=None):
        """ids [B, T] -> (logits [B, T, V], aux loss).  mode (mor only): top_k
        (training; non-causal), threshold (causal, batch 1 only), full (every token
        at every depth).  stats: dict that receives 'depth' [B, T] (mor)."""
        c = self.cfg
        B, T = ids.shape
        x = self.embed(ids)
        pos = torch.arange(T, device=ids.device).expand(B, T)
        cos, sin, mask = self._tables(pos)
        aux = x.new_zeros(())
        if c.kind == "vanilla":
            for lay in self.layers:
                x = lay(x, cos, sin, mask)
        else:
            x = self.first(x, cos, sin, mask)
            if c.kind == "recursive":
                for _ in range(c.nr):
                    for lay in self.block:
                        x = lay(x, cos, sin, mask)
            elif c.kind == "tc":
                x, aux = self._token_choice(x, cos, sin, mask, stats)
            else:
                x, aux = self._recurse(x, mode, threshold, stats)
            x = self.last(x, cos, sin, mask)
        logits = self.norm(x) @ self.embed.weight.t()
        return logits, aux

    def _token_choice(self, x, cos, sin, mask, stats):
        c = self.cfg
        B, T, D = x.shape
        p = torch.softmax(self.router(x), dim=-1)                 # alpha 1.0
        d = p.argmax(-1)                                          # [B, T]
        w = p.gather(-1, d[..., None])                            # [B, T, 1]
        # balancing loss: N_r * sum_r (share of tokens with depth r) * (mean p_r)
        f = F.one_hot(d, c.nr).float().mean((0, 1))
        aux = c.nr * (f * p.mean((0, 1))).sum()
        cur, out = x, x
        eye = torch.eye(T, dtype=torch.bool, device=x.device)
        for r in range(c.nr):
            act = d >= r                                          # [B, T]
            m = (mask[None] | ~act[:, None, :]) & ~eye[None]      # keys: active, causal
            y = cur
            for lay in self.block:
                y = lay(y, cos, sin, m[:, None])
            out = torch.where((d == r)[..., None], x + w * y, out)
            cur = torch.where((d > r)[..., None], y, cur)
        if stats is not None:
            stats["depth"] = d + 1
        return out, aux

    def _recurse(self, x, mode, threshold, stats):
        c = self.cfg
        B, T, D = x.shape
        active = torch.arange(T, device=x.device).expand(B, T)   # absolute positions
        depth = torch.zeros(B, T, dtype=torch.long, device=x.device)
        aux = x.new_zeros(())
        for r in range(c.nr):
            xa = x.gather(1, active[..., None].expand(-1, -1, D))
            logit = self.routers[r](xa).squeeze(-1)                 # [B, na]
            s = torch.sigmoid(logit)
            na = active.shape[1]
            cap = c.capacity[r]
            if mode == "full" or cap >= 1.0:
                sel = torch.arange(na, device=x.device).expand(B, na)
            elif mode == "top_k":
                k = min(na, max(1, int(math.floor(cap * T))))
                sel = torch.topk(c.alpha * s, k, dim=1).indices.sort(dim=1).values
            elif mode == "threshold":
                assert B == 1
                sel = torch.nonzero(s[0] >= threshold).flatten()[None]
            else:
                raise ValueError(mode)
            if self.training:
                target = torch.zeros_like(logit).scatter(1, sel, 1.0)
                aux = aux + F.binary_cross_entropy_with_logits(logit, target)
            if sel.shape[1] == 0:
                break
            chosen = active.gather(1, sel)
            xc = xa.gather(1, sel[..., None].expand(-1, -1, D))
            sc = s.gather(1, sel)
            cos, sin, mask = self._tables(chosen)
            y = xc
            for lay in self.block:
                y = lay(y, cos, sin, mask)
            xc = xc + (c.alpha * sc)[..., None] * y
            x = x.scatter(1, chosen[..., None].expand(-1, -1, D), xc)
            depth = depth.scatter(1, chosen, r + 1)
            active = chosen
        if stats is not None:
            stats["depth"] = depth
        return x, aux / c.nr


def linear_macs_per_token(cfg):
    """Multiply-accumulates of the linear layers (incl. the LM head) per token, forward:
    the unit in which training compute is matched (attention scores are left out;
    at T = 256 they add under 10% and favour the MoR model's reduced T at depth)."""
    hd = cfg.hd
    lay = cfg.d * (cfg.heads * hd) * 2 + cfg.d * (cfg.kv_heads * hd) * 2 + 3 * cfg.d * cfg.ffn
    head = cfg.d * cfg.vocab
    if cfg.kind in ("mor", "tc"):   # tc: with balanced routing, depths 1..N_r equally often
        apps = 2 + cfg.block * sum(cfg.capacity)
    else:
        apps = cfg.layers
    return apps * lay + head
