#!/usr/bin/python3
# make_bad.py: regenerates the bad-input files of tests/bad/frontend: one
# model description (plus weights where the case needs them) per error, and
# <name>.expected holding text the error message must contain.
# Usage: /usr/bin/python3 tests/bad/make_bad.py   (deterministic; no numpy)
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "frontend")

# The base model: expert_choice over middle_cycle, 2 recursions, 4 layers
# (prefix, one shared block layer, suffix), tied embeddings.
V, D, F, H, KVH, HD, L, NR = 8, 4, 8, 2, 1, 2, 4, 2
BASE = {
    "model_type": "mor",
    "vocab_size": V,
    "hidden_size": D,
    "intermediate_size": F,
    "num_hidden_layers": L,
    "num_attention_heads": H,
    "num_key_value_heads": KVH,
    "head_dim": HD,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 64,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "mor": {
        "num_recursions": NR,
        "sharing": "middle_cycle",
        "routing": "expert_choice",
        "router": "linear",
        "capacity": [1.0, 0.5],
    },
}
DSIZE = {"F32": 4, "F16": 2, "BF16": 2}


def values(seed, n):
    """Deterministic small values, exact in every float type."""
    return [((seed * 31 + i * 7) % 17 - 8) / 8.0 for i in range(n)]


def seed_of(name):
    return sum((i + 1) * ord(c) for i, c in enumerate(name)) % 1000


def layer(prefix, seed_prefix=None):
    seed_prefix = seed_prefix or prefix
    parts = [
        ("self_attn.q_proj.weight", [H * HD, D]),
        ("self_attn.k_proj.weight", [KVH * HD, D]),
        ("self_attn.v_proj.weight", [KVH * HD, D]),
        ("self_attn.o_proj.weight", [D, H * HD]),
        ("mlp.gate_proj.weight", [F, D]),
        ("mlp.up_proj.weight", [F, D]),
        ("mlp.down_proj.weight", [D, F]),
        ("input_layernorm.weight", [D]),
        ("post_attention_layernorm.weight", [D]),
    ]
    return [tensor(prefix + "." + s, shape, seed=seed_of(seed_prefix + "." + s)) for s, shape in parts]


def tensor(name, shape, dtype="F32", seed=None):
    n = 1
    for d in shape:
        n *= d
    return {"name": name, "dtype": dtype, "shape": shape,
            "values": values(seed_of(name) if seed is None else seed, n)}


def base_tensors():
    ts = [tensor("model.embed_tokens.weight", [V, D]), tensor("model.norm.weight", [D])]
    ts += layer("model.layers.0")
    ts += layer("model.layers.1.block.0")
    ts += layer("model.layers.3")
    ts += [tensor("model.layers.1.mor_router.router.weight", [1, D]),
           tensor("model.layers.2.mor_router.router.weight", [1, D])]
    return ts


def encode(t):
    v = t["values"]
    if t["dtype"] == "F32":
        return struct.pack("<%df" % len(v), *v)
    if t["dtype"] == "F16":
        return struct.pack("<%de" % len(v), *v)
    if t["dtype"] == "BF16":
        return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", x))[0])[2:] for x in v)
    raise ValueError(t["dtype"])


def st_bytes(ts, patch=None, hlen=None):
    """A safetensors file; patch(header_dict) may corrupt the header."""
    header, blobs, off = {}, [], 0
    for t in ts:
        b = encode(t)
        header[t["name"]] = {"dtype": t["dtype"], "shape": t["shape"], "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if patch:
        patch(header)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + b"".join(blobs)


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def case(name, expected, cfg=None, text=None, st=None, extra=None):
    """cfg: the description as a dict (weights default to <name>.safetensors
    when st is given); text: raw description text; st: safetensors bytes;
    extra: {file name: bytes} written beside."""
    if text is None:
        cfg = json.loads(json.dumps(cfg))
        if st is not None and "weights" not in cfg:
            cfg["weights"] = [name + ".safetensors"]
        text = json.dumps(cfg, indent=2) + "\n"
    write(name + ".json", text)
    if st is not None:
        write(name + ".safetensors", st)
    for fname, data in (extra or {}).items():
        write(fname, data)
    write(name + ".expected", expected + "\n")


def with_(d, **kw):
    d = json.loads(json.dumps(d))
    for k, v in kw.items():
        if v is DEL:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def with_mor(d, **kw):
    d = json.loads(json.dumps(d))
    d["mor"] = with_(d["mor"], **kw)
    return d


DEL = object()


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))

    good = base_tensors()
    # the base, valid: the golden suite checks that it loads
    write("valid.json", json.dumps(with_(BASE, weights=["valid.safetensors"]), indent=2) + "\n")
    write("valid.safetensors", st_bytes(good))

    # ---- the description ------------------------------------------------
    case("json_malformed", "json_malformed.json:4:20: malformed JSON (expected a key in double quotes, got ',')",
         text='{\n  "model_type": "mor",\n  "vocab_size": 8,\n  "hidden_size": 4,,\n  "mor": {}\n}\n')
    case("json_unclosed", "json_unclosed.json:3:1: malformed JSON (expected a key in double quotes, got end of input)",
         text='{\n  "model_type": "mor",\n')
    case("json_trailing_text", "json_trailing_text.json:1:25: malformed JSON (unexpected text after the JSON value)",
         text='{"model_type": "llama"} x\n')
    case("json_top_level_array", "json_top_level_array.json: expected a JSON object at the top level, got an array",
         text='[1, 2]\n')
    case("json_duplicate_key", "json_duplicate_key.json: vocab_size: key appears twice",
         text='{"model_type": "llama", "vocab_size": 8, "vocab_size": 9}\n')
    case("type_hidden_size_string", 'type_hidden_size_string.json: hidden_size: expected a positive integer, got "4"',
         cfg=with_(BASE, hidden_size="4"))
    case("type_hidden_size_fraction", "type_hidden_size_fraction.json: hidden_size: expected a positive integer, got 4.5",
         cfg=with_(BASE, hidden_size=4.5))
    case("type_tie_not_bool", "type_tie_not_bool.json: tie_word_embeddings: expected true or false, got 1",
         cfg=with_(BASE, tie_word_embeddings=1))
    case("type_sharing_number",
         'type_sharing_number.json: mor.sharing: expected "cycle", "middle_cycle", "sequence" or "middle_sequence", got 3',
         cfg=with_mor(BASE, sharing=3))
    case("type_mor_not_object", "type_mor_not_object.json: mor: expected an object, got an array",
         cfg=with_(BASE, mor=[1]))
    case("type_weights_string", 'type_weights_string.json: weights: expected a non-empty array of file names, got "m.safetensors"',
         cfg=with_(BASE, weights="m.safetensors"))
    case("missing_vocab_size",
         "missing_vocab_size.json: vocab_size: required key is missing (expected a positive integer)",
         cfg=with_(BASE, vocab_size=DEL))
    case("missing_num_attention_heads",
         "missing_num_attention_heads.json: num_attention_heads: required key is missing",
         cfg=with_(BASE, num_attention_heads=DEL))
    case("vocab_size_zero", "vocab_size_zero.json: vocab_size: expected a positive integer, got 0",
         cfg=with_(BASE, vocab_size=0))
    case("model_type_unknown", 'model_type_unknown.json: model_type: expected "mor" or "llama", got "gpt2"',
         cfg=with_(BASE, model_type="gpt2"))
    case("num_recursions_zero", "num_recursions_zero.json: mor.num_recursions: expected an integer in [1, 4] "
         "(at most 64 and at most num_hidden_layers), got 0", cfg=with_mor(BASE, num_recursions=0))
    case("num_recursions_huge", "num_recursions_huge.json: mor.num_recursions: expected an integer in [1, 4]",
         cfg=with_mor(BASE, num_recursions=1000000))
    case("num_recursions_over_64", "num_recursions_over_64.json: mor.num_recursions: expected an integer in [1, 64] "
         "(at most 64 and at most num_hidden_layers), got 65",
         cfg=with_mor(with_(BASE, num_hidden_layers=200), num_recursions=65, capacity=DEL))
    case("capacity_increasing", "capacity_increasing.json: mor.capacity[1]: expected a number <= mor.capacity[0] "
         "(0.5; capacities are non-increasing), got 1", cfg=with_mor(BASE, capacity=[0.5, 1.0]))
    case("capacity_above_one", "capacity_above_one.json: mor.capacity[0]: expected a number in (0, 1], got 1.5",
         cfg=with_mor(BASE, capacity=[1.5, 0.5]))
    case("capacity_zero", "capacity_zero.json: mor.capacity[1]: expected a number in (0, 1], got 0",
         cfg=with_mor(BASE, capacity=[1.0, 0]))
    case("capacity_wrong_length", "capacity_wrong_length.json: mor.capacity: expected 2 entries (one per recursion, "
         "num_recursions is 2), got 3", cfg=with_mor(BASE, capacity=[1.0, 0.5, 0.25]))
    case("capacity_string", 'capacity_string.json: mor.capacity[1]: expected a number in (0, 1], got "0.5"',
         cfg=with_mor(BASE, capacity=[1.0, "0.5"]))
    case("layers_not_divisible", 'layers_not_divisible.json: num_hidden_layers: expected num_hidden_layers - 2 '
         'divisible by mor.num_recursions (2) with sharing "middle_cycle", got 3',
         cfg=with_(BASE, num_hidden_layers=5))
    case("layers_not_divisible_cycle", 'layers_not_divisible_cycle.json: num_hidden_layers: expected a number '
         'divisible by mor.num_recursions (2) with sharing "cycle", got 3',
         cfg=with_mor(with_(BASE, num_hidden_layers=3), sharing="cycle"))
    case("empty_block", 'empty_block.json: num_hidden_layers: 2 layers with sharing "middle_cycle" leave an empty '
         'shared block', cfg=with_mor(with_(BASE, num_hidden_layers=2), num_recursions=1, capacity=DEL))
    case("routing_with_sequence", 'routing_with_sequence.json: mor.sharing: expected "cycle" or "middle_cycle" with '
         'routing "expert_choice", got "sequence"', cfg=with_mor(BASE, sharing="sequence"))
    case("token_choice_with_middle_sequence", 'mor.sharing: expected "cycle" or "middle_cycle" with routing '
         '"token_choice", got "middle_sequence"',
         cfg=with_mor(BASE, sharing="middle_sequence", routing="token_choice", capacity=DEL))
    case("mor_in_llama", 'mor_in_llama.json: mor: a "llama" model has no mor object', cfg=with_(BASE, model_type="llama"))
    case("kv_heads_not_divisor", "kv_heads_not_divisor.json: num_key_value_heads: expected a divisor of "
         "num_attention_heads (3), got 2",
         cfg=with_(BASE, num_attention_heads=3, num_key_value_heads=2, hidden_size=6))
    case("head_dim_not_derivable", "head_dim_not_derivable.json: head_dim: not given, and hidden_size (4) is not "
         "divisible by num_attention_heads (3)", cfg=with_(BASE, num_attention_heads=3, num_key_value_heads=1,
                                                             head_dim=DEL))
    case("head_dim_odd", "head_dim_odd.json: head_dim: expected an even number", cfg=with_(BASE, head_dim=3))
    case("size_overflow", "size_overflow.json: vocab_size * hidden_size: the product overflows 64 bits",
         cfg=with_(BASE, vocab_size=2 ** 40, hidden_size=2 ** 30, head_dim=DEL))
    case("size_overflow_layers", "size_overflow_layers.json: num_hidden_layers * the weights of one layer: the "
         "product overflows 64 bits",
         cfg=with_mor(with_(BASE, hidden_size=2 ** 28, intermediate_size=2 ** 28, head_dim=2 ** 27,
                            num_hidden_layers=66), num_recursions=1, capacity=DEL))
    case("size_beyond_2_53", "size_beyond_2_53.json: vocab_size: expected a positive integer, got 1e+20",
         cfg=with_(BASE, vocab_size=10 ** 20))
    case("hidden_act_gelu", 'hidden_act_gelu.json: hidden_act: expected "silu" (the only activation of v1), got "gelu"',
         cfg=with_(BASE, hidden_act="gelu"))
    case("rope_scaling_set", "rope_scaling_set.json: rope_scaling: expected null (RoPE scaling is not part of v1), "
         "got an object", cfg=with_(BASE, rope_scaling={"type": "linear", "factor": 2.0}))
    case("attention_bias_true", "attention_bias_true.json: attention_bias: expected false (biases are not part of v1), "
         "got true", cfg=with_(BASE, attention_bias=True))
    case("rms_norm_eps_negative", "rms_norm_eps_negative.json: rms_norm_eps: expected a finite number > 0, got -1e-05",
         cfg=with_(BASE, rms_norm_eps=-1e-5))
    case("alpha_infinite", "alpha_infinite.json: mor.alpha: expected a finite number, got inf",
         text=json.dumps(BASE, indent=2).replace('"router": "linear"', '"router": "linear",\n    "alpha": 1e999') + "\n")
    case("temperature_zero", "temperature_zero.json: mor.temperature: expected a finite number > 0, got 0",
         cfg=with_mor(BASE, temperature=0))
    case("top_k_with_token_choice", 'top_k_with_token_choice.json: mor.inference_routing: "top_k" needs routing '
         '"expert_choice", got routing "token_choice"',
         cfg=with_mor(BASE, routing="token_choice", capacity=DEL, inference_routing="top_k"))
    case("activation_softmax_expert", 'activation_softmax_expert.json: mor.router_activation: expected "sigmoid" or '
         '"tanh" with routing "expert_choice", got "softmax"', cfg=with_mor(BASE, router_activation="softmax"))
    case("activation_tanh_token", 'activation_tanh_token.json: mor.router_activation: expected "softmax" or '
         '"sigmoid" with routing "token_choice", got "tanh"',
         cfg=with_mor(BASE, routing="token_choice", capacity=DEL, router_activation="tanh"))
    case("routing_unknown", 'routing_unknown.json: mor.routing: expected "none", "expert_choice" or "token_choice", '
         'got "random"', cfg=with_mor(BASE, routing="random"))
    case("kv_cache_unknown", 'kv_cache_unknown.json: mor.kv_cache: expected "recursion_wise" or "recursive_sharing", '
         'got "paged"', cfg=with_mor(BASE, kv_cache="paged"))

    # ---- safetensors headers ------------------------------------------
    case("st_truncated", "st_truncated.safetensors: file is 5 bytes, too short for a safetensors file",
         cfg=BASE, st=b"\x10\x00\x00\x00\x00")
    case("st_header_past_eof", "st_header_past_eof.safetensors: header length 1000 runs past the end of the file "
         "(24 bytes, so at most 16)", cfg=BASE, st=struct.pack("<Q", 1000) + b'{"a":{}}        ')
    case("st_header_malformed", "st_header_malformed.safetensors: header:1:31: malformed JSON (expected ':' after the key, got '\"')",
         cfg=BASE, st=struct.pack("<Q", 32) + b'{"model.norm.weight":{"dtype" "F32"}}'[:32])
    case("st_header_not_object", "st_header_not_object.safetensors: header: expected a JSON object, got an array",
         cfg=BASE, st=struct.pack("<Q", 8) + b"[]      ")

    def patch_entry(name, **kw):
        def p(h):
            for k, v in kw.items():
                if v is DEL:
                    del h[name][k]
                else:
                    h[name][k] = v
        return p

    norm_off = None
    off = 0
    for t in good:
        n = len(encode(t))
        if t["name"] == "model.norm.weight":
            norm_off = off
        off += n
    data_len = off
    case("st_overlap", "st_overlap.safetensors: tensors 'model.embed_tokens.weight' (bytes [0, 128]) and "
         "'model.norm.weight' (bytes [112, 128]) overlap", cfg=BASE,
         st=st_bytes(good, patch_entry("model.norm.weight", data_offsets=[112, 128])))
    case("st_offsets_past_file", "st_offsets_past_file.safetensors: tensor 'model.norm.weight': data_offsets "
         "[%d, %d]: end is past the data in the file (%d bytes after the header)" % (data_len, data_len + 16, data_len),
         cfg=BASE, st=st_bytes(good, patch_entry("model.norm.weight", data_offsets=[data_len, data_len + 16])))
    case("st_offsets_reversed", "st_offsets_reversed.safetensors: tensor 'model.norm.weight': data_offsets "
         "[%d, %d]: begin is past end" % (norm_off + 16, norm_off), cfg=BASE,
         st=st_bytes(good, patch_entry("model.norm.weight", data_offsets=[norm_off + 16, norm_off])))
    case("st_size_mismatch", "st_size_mismatch.safetensors: tensor 'model.norm.weight': data_offsets [%d, %d] hold "
         "16 bytes but shape [8] of F32 needs 32" % (norm_off, norm_off + 16), cfg=BASE,
         st=st_bytes(good, patch_entry("model.norm.weight", shape=[8])))
    case("st_size_mismatch_dtype", "st_size_mismatch_dtype.safetensors: tensor 'model.norm.weight': data_offsets "
         "[%d, %d] hold 16 bytes but shape [4] of F16 needs 8" % (norm_off, norm_off + 16), cfg=BASE,
         st=st_bytes(good, patch_entry("model.norm.weight", dtype="F16")))
    case("st_dtype_i64", "st_dtype_i64.safetensors: tensor 'model.norm.weight': dtype \"I64\" is not supported "
         "(expected F32, F16 or BF16)", cfg=BASE, st=st_bytes(good, patch_entry("model.norm.weight", dtype="I64")))
    case("st_dtype_unknown", "st_dtype_unknown.safetensors: tensor 'model.norm.weight': dtype \"F12\" is not a "
         "safetensors dtype", cfg=BASE, st=st_bytes(good, patch_entry("model.norm.weight", dtype="F12")))
    case("st_dtype_missing", "st_dtype_missing.safetensors: tensor 'model.norm.weight': dtype: required key is "
         "missing", cfg=BASE, st=st_bytes(good, patch_entry("model.norm.weight", dtype=DEL)))
    case("st_shape_negative", "st_shape_negative.safetensors: tensor 'model.norm.weight': shape[0]: expected a "
         "non-negative integer, got -4", cfg=BASE, st=st_bytes(good, patch_entry("model.norm.weight", shape=[-4])))
    case("st_rank_5", "st_rank_5.safetensors: tensor 'model.norm.weight': shape: rank 5 is not supported",
         cfg=BASE, st=st_bytes(good, patch_entry("model.norm.weight", shape=[1, 1, 1, 1, 4])))
    case("st_shape_overflow", "st_shape_overflow.safetensors: tensor 'model.norm.weight': shape [4294967296, "
         "4294967296] has more elements than fit in 64 bits", cfg=BASE,
         st=st_bytes(good, patch_entry("model.norm.weight", shape=[2 ** 32, 2 ** 32])))
    case("st_offsets_not_pair", "st_offsets_not_pair.safetensors: tensor 'model.norm.weight': data_offsets: expected "
         "[begin, end] of two non-negative integers, got an array", cfg=BASE,
         st=st_bytes(good, patch_entry("model.norm.weight", data_offsets=[0])))

    # ---- JSON error excerpts: found by fuzzing (tests/fuzz) -------------
    # a CR before the column on a long line: the excerpt once started past its end
    case("json_cr_before_column", "json_cr_before_column.json:1:92: malformed JSON", text=b"{" + b"\r" * 90 + b"1}")
    # bytes that are not UTF-8 are shown as '?' and the caret counts characters
    case("json_stray_bytes", 'json_stray_bytes.json:2:18: malformed JSON (expected a value, got byte 0x8f)\n'
         '    "hidden_size": ??}\n                   ^', text=b'{"vocab_size": 8,\n  "hidden_size": \x8f\xff}\n')

    # ---- names, shapes, copies ----------------------------------------
    case("missing_tensor", "missing_tensor.safetensors: missing tensor 'model.layers.0.mlp.up_proj.weight' "
         "(expected shape [intermediate_size, hidden_size] = [8, 4])", cfg=BASE,
         st=st_bytes([t for t in good if t["name"] != "model.layers.0.mlp.up_proj.weight"]))
    case("missing_router", "missing_router.safetensors: missing tensor 'model.layers.2.mor_router.router.weight'",
         cfg=BASE, st=st_bytes([t for t in good if t["name"] != "model.layers.2.mor_router.router.weight"]))
    case("missing_lm_head_untied", "missing_lm_head_untied.safetensors: missing tensor 'lm_head.weight'",
         cfg=with_(BASE, tie_word_embeddings=False), st=st_bytes(good))
    case("unexpected_tensor", "unexpected_tensor.safetensors: unexpected tensor "
         "'model.layers.0.self_attn.q_proj.bias'", cfg=BASE,
         st=st_bytes(good + [tensor("model.layers.0.self_attn.q_proj.bias", [H * HD])]))
    # a name from the file is escaped in the message: no line, quote or control byte of its own
    hostile = 'a"b\nc*/ \\%s%n\u202e\x01\x7f'
    case("unexpected_tensor_hostile_name", "unexpected_tensor_hostile_name.safetensors: unexpected tensor "
         "'a\\\"b\\nc*/ \\\\%s%n\\xe2\\x80\\xae\\x01\\x7f': a model with routing", cfg=BASE,
         st=st_bytes(good + [tensor(hostile, [1])]))
    case("st_dtype_hostile_name", "st_dtype_hostile_name.safetensors: tensor 'a\\\"b\\nc*/ \\\\%s%n\\xe2\\x80\\xae"
         "\\x01\\x7f': dtype \"\\n\\x1b[31m\" is not a safetensors dtype", cfg=BASE,
         st=st_bytes(good + [dict(tensor(hostile, [1]), dtype="F32")],
                     patch=lambda h: h[hostile].update(dtype="\n\x1b[31m")))
    case("unexpected_block_name", "missing tensor 'model.layers.1.block.0.self_attn.q_proj.weight' (expected shape "
         "[num_attention_heads * head_dim, hidden_size] = [4, 4]); the files hold unexpected tensor "
         "'model.layers.1.block_list.0.0.self_attn.q_proj.weight'", cfg=BASE,
         st=st_bytes([dict(t, name=t["name"].replace("layers.1.block.0", "layers.1.block_list.0.0")) for t in good]))
    case("misshapen_tensor", "misshapen_tensor.safetensors: tensor 'model.layers.1.block.0.self_attn.q_proj.weight': "
         "shape [2, 4] does not match the description: expected [num_attention_heads * head_dim, hidden_size] = [4, 4]",
         cfg=BASE, st=st_bytes([tensor(t["name"], [2, 4]) if t["name"] == "model.layers.1.block.0.self_attn.q_proj.weight"
                                else t for t in good]))
    case("misshapen_router", "misshapen_router.safetensors: tensor 'model.layers.1.mor_router.router.weight': shape "
         "[2, 4] does not match the description: expected [1, hidden_size] = [1, 4]", cfg=BASE,
         st=st_bytes([tensor(t["name"], [2, 4]) if t["name"] == "model.layers.1.mor_router.router.weight" else t
                      for t in good]))
    copy = layer("model.layers.2.block.0", "model.layers.1.block.0")
    bad_copy = [dict(t, values=t["values"][:5] + [t["values"][5] + 0.5] + t["values"][6:])
                if t["name"].endswith("mlp.down_proj.weight") else t for t in copy]
    case("shared_copy_differs", "shared_copy_differs.safetensors: tensor 'model.layers.2.block.0.mlp.down_proj.weight' "
         "is a copy of the shared weight 'model.layers.1.block.0.mlp.down_proj.weight'", cfg=BASE,
         st=st_bytes(good + bad_copy))
    lm = tensor("lm_head.weight", [V, D])
    case("lm_head_tied_differs", "lm_head_tied_differs.safetensors: tensor 'lm_head.weight' differs from "
         "'model.embed_tokens.weight' although tie_word_embeddings is true", cfg=BASE, st=st_bytes(good + [lm]))
    # routing none, cycle: unrolled layer 1 is a later use of block layer 0
    none_cfg = with_mor(with_(BASE, num_hidden_layers=2), sharing="cycle", routing="none", capacity=DEL)
    none_ts = [tensor("model.embed_tokens.weight", [V, D]), tensor("model.norm.weight", [D])]
    none_ts += layer("model.layers.0")
    none_bad = [dict(t, values=[-x for x in t["values"]]) if t["name"].endswith("input_layernorm.weight") else t
                for t in layer("model.layers.1", "model.layers.0")]
    case("unrolled_copy_differs", "unrolled_copy_differs.safetensors: tensor 'model.layers.1.input_layernorm.weight' "
         "is a copy of the shared weight 'model.layers.0.input_layernorm.weight'", cfg=none_cfg,
         st=st_bytes(none_ts + none_bad))

    # ---- several files --------------------------------------------------
    half = len(good) // 2
    case("shard_missing_file", 'shard_missing_file.safetensors.index.json: weight_map["model.norm.weight"]: shard '
         'shard_missing_file-00002.safetensors does not exist',
         cfg=with_(BASE, weights=["shard_missing_file.safetensors.index.json"]),
         extra={"shard_missing_file.safetensors.index.json": json.dumps(
             {"metadata": {"total_size": 0}, "weight_map": {
                 "model.embed_tokens.weight": "shard_missing_file-00001.safetensors",
                 "model.norm.weight": "shard_missing_file-00002.safetensors"}}, indent=2) + "\n",
             "shard_missing_file-00001.safetensors": st_bytes(good[:1])})
    wm = {t["name"]: "shard_not_listed-0000%d.safetensors" % (1 if i < half else 2) for i, t in enumerate(good)}
    del wm["model.norm.weight"]
    case("shard_not_listed", "shard_not_listed-00001.safetensors: tensor 'model.norm.weight' is not listed in the "
         "index", cfg=with_(BASE, weights=["shard_not_listed.safetensors.index.json"]),
         extra={"shard_not_listed.safetensors.index.json": json.dumps({"weight_map": wm}, indent=2) + "\n",
                "shard_not_listed-00001.safetensors": st_bytes(good[:half]),
                "shard_not_listed-00002.safetensors": st_bytes(good[half:])})
    wm = {t["name"]: "shard_not_in_file-0000%d.safetensors" % (1 if i < half else 2) for i, t in enumerate(good)}
    wm["model.layers.7.mlp.up_proj.weight"] = "shard_not_in_file-00002.safetensors"
    case("shard_not_in_file", 'shard_not_in_file.safetensors.index.json: weight_map["model.layers.7.mlp.up_proj.'
         'weight"]: tensor is not in shard shard_not_in_file-00002.safetensors',
         cfg=with_(BASE, weights=["shard_not_in_file.safetensors.index.json"]),
         extra={"shard_not_in_file.safetensors.index.json": json.dumps({"weight_map": wm}, indent=2) + "\n",
                "shard_not_in_file-00001.safetensors": st_bytes(good[:half]),
                "shard_not_in_file-00002.safetensors": st_bytes(good[half:])})
    case("duplicate_across_files", "tensor 'model.norm.weight' is in two weight files",
         cfg=with_(BASE, weights=["duplicate_across_files-a.safetensors", "duplicate_across_files-b.safetensors"]),
         extra={"duplicate_across_files-a.safetensors": st_bytes(good),
                "duplicate_across_files-b.safetensors": st_bytes([tensor("model.norm.weight", [D])])})


if __name__ == "__main__":
    main()
