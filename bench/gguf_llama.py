#!/usr/bin/env python3
"""bench/gguf_llama.py: writes a GGUF file of a plain Llama model with random
weights, for bench/compare-llamacpp only (llama.cpp reads it with llama-bench).

  PYTHONPATH=.../llama.cpp/gguf-py python3 bench/gguf_llama.py OUT.gguf DTYPE \
      LAYERS D HEADS KV_HEADS FFN VOCAB CONTEXT

DTYPE: f32, f16, bf16 or q8_0 for the 2-D weights (norms stay f32, as in
llama.cpp's own conversions). Embeddings are tied (no output.weight: llama.cpp
then uses token_embd for the head). The vocabulary is "no_vocab" with
llama.vocab_size dummy tokens: llama-bench feeds random token ids and never
tokenizes text. Tensors are generated and written one at a time, so memory
stays at one tensor (the largest is the 49152 x D embedding)."""
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf.quants import quantize, quant_shape_to_byte_shape

TYPES = {"f32": (Q.F32, gguf.LlamaFileType.ALL_F32),
         "f16": (Q.F16, gguf.LlamaFileType.MOSTLY_F16),
         "bf16": (Q.BF16, gguf.LlamaFileType.MOSTLY_BF16),
         "q8_0": (Q.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0)}


def main():
    if len(sys.argv) != 10 or sys.argv[2] not in TYPES:
        sys.exit("usage: gguf_llama.py OUT.gguf f32|f16|bf16|q8_0 LAYERS D HEADS KV_HEADS FFN VOCAB CONTEXT")
    out, dt = sys.argv[1], sys.argv[2]
    L, D, H, KVH, F, V, CTX = (int(x) for x in sys.argv[3:])
    HD = D // H
    qtype, ftype = TYPES[dt]

    # (name, numpy shape [rows, cols] or [n], is_norm)
    ts = [("token_embd.weight", (V, D), False)]
    for i in range(L):
        p = f"blk.{i}."
        ts += [(p + "attn_norm.weight", (D,), True),
               (p + "attn_q.weight", (H * HD, D), False),
               (p + "attn_k.weight", (KVH * HD, D), False),
               (p + "attn_v.weight", (KVH * HD, D), False),
               (p + "attn_output.weight", (D, H * HD), False),
               (p + "ffn_norm.weight", (D,), True),
               (p + "ffn_gate.weight", (F, D), False),
               (p + "ffn_up.weight", (F, D), False),
               (p + "ffn_down.weight", (D, F), False)]
    ts.append(("output_norm.weight", (D,), True))

    w = gguf.GGUFWriter(out, "llama")
    w.add_name(f"morc-bench-llama-{L}x{D}")
    w.add_context_length(CTX)
    w.add_embedding_length(D)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(KVH)
    w.add_rope_dimension_count(HD)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(V)
    w.add_file_type(int(ftype))
    w.add_tokenizer_model("no_vocab")

    def kind(norm):
        return Q.F32 if norm else qtype

    for name, shape, norm in ts:
        t = kind(norm)
        if t == Q.F32:
            w.add_tensor_info(name, shape, np.dtype(np.float32), 4 * int(np.prod(shape)))
        elif t == Q.F16:
            w.add_tensor_info(name, shape, np.dtype(np.float16), 2 * int(np.prod(shape)))
        else:
            bshape = quant_shape_to_byte_shape(shape, t)
            w.add_tensor_info(name, bshape, np.dtype(np.uint8), int(np.prod(bshape)), raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    rng = np.random.default_rng(1)
    for name, shape, norm in ts:
        if norm:
            a = np.ones(shape, dtype=np.float32)
        else:  # uniform in [-0.0346, 0.0346): sd 0.02, as bench/mkweights.c
            a = rng.uniform(-0.0346, 0.0346, size=shape).astype(np.float32)
        w.write_tensor_data(quantize(a, kind(norm)))
    w.close()


if __name__ == "__main__":
    main()
