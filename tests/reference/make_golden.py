"""Writes tests/golden/<variant>/ for every example of examples/ with the
independent reference (mor_ref.py), and asserts invariants 1 (chunked ==
unchunked) and 3 (none_cycle == llama_unrolled_of_cycle) on the way.

Run: /usr/bin/python3 tests/reference/gen_examples.py && /usr/bin/python3 tests/reference/make_golden.py
"""

import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mor_ref  # noqa: E402
from gen_examples import EXAMPLES, ROOT, VARIANTS, tokens_for  # noqa: E402

GOLDEN = os.path.join(ROOT, "tests", "golden")
SAVED_CHUNKS = [7, 1, 1, 5, 6]
OTHER_CHUNKS = [[1] * 20, [13, 7], [3, 17], [19, 1]]
MIN_MARGIN = 1e-4     # every routing decision must be this far from flipping
CHUNK_TOL = 1e-5      # invariant 1, on f32 logits of an f64 computation
F32_TOL = 1e-4        # the same model computed in f32 by this reference


def write_ints(path, values, sep):
    with open(path, "w") as f:
        f.write(sep.join(str(int(v)) for v in values) + "\n")


def depth_shares(depths, n_r):
    """Share of tokens whose depth reached is >= r, for r = 1..N_r."""
    return [float(np.mean(depths >= r)) for r in range(1, n_r + 1)]


README = """# Golden outputs

Made by the independent PyTorch reference `tests/reference/mor_ref.py` (float64
compute, float32 output) from the models of `examples/`; committed so that the
C tests need no Python. Regenerate (byte-identical on a rerun):

    /usr/bin/python3 tests/reference/gen_examples.py && /usr/bin/python3 tests/reference/make_golden.py

`manifest.txt`: one line per variant, `<variant> <causal:0|1>`. Causal variants
(threshold or token-choice routing, or none) give the same logits however the
sequence is split into forward calls; the non-causal ones (top_k) must be run
as one call. The model of variant `v` is `examples/v/model.json`, or
`examples/v/config.json` for the `llama_*` variants (plain Hugging Face configs).

Per variant, `tests/golden/<variant>/`:

- `tokens.txt`: one line, the comma-separated token ids (positions 0..T-1).
- `logits.npy`: float32 `[T, V]`, NumPy .npy v1.0, the logits of one forward call.
- `depths.txt`: one integer per line, the depth reached per token (section 7 of
  the model format: recursions run, 0..N_r; N_r for routing none).
- causal only, `chunks.txt`: one line of comma-separated chunk sizes, and
  `logits_chunked.npy`: the logits of successive forward calls of those sizes
  with the caches kept (invariant 1; make_golden.py asserts they equal
  `logits.npy`, as they do for several other splits, within 1e-5).

make_golden.py also asserts: every routing decision is at least 1e-4 from
flipping (so f32 rounding cannot change a depth), the same model computed in
float32 gives the same depths and logits within 1e-4, none_cycle ==
llama_unrolled_of_cycle (invariant 3), and, where `transformers` is installed,
that every routing-none recursion-wise model equals Hugging Face's
`LlamaForCausalLM` with its layers unrolled (invariants 2 and 3).

Share of tokens reaching depth >= 1 .. N_r (the golden tokens):

| variant | causal | N_r | depth >= 1 .. N_r |
|---|---|---|---|
"""


def write_readme(summary):
    rows = "".join(f"| `{n}` | {c} | {r} | {s} |\n" for n, c, r, s in summary)
    with open(os.path.join(GOLDEN, "README.md"), "w") as f:
        f.write(README + rows)


def main():
    if os.path.isdir(GOLDEN):
        for v in os.listdir(GOLDEN):
            if os.path.isdir(os.path.join(GOLDEN, v)):
                shutil.rmtree(os.path.join(GOLDEN, v))
    os.makedirs(GOLDEN, exist_ok=True)
    manifest, results, summary = [], {}, []
    for name, _, _, _ in VARIANTS:
        m = mor_ref.load_model(os.path.join(EXAMPLES, name))
        c = m.c
        toks = tokens_for(name)
        logits, depths = m.run(toks)
        margin = min([mg for _, mg in m.margins], default=float("inf"))
        assert margin >= MIN_MARGIN, f"{name}: a routing decision is {margin:.2e} from flipping"
        out = os.path.join(GOLDEN, name)
        os.makedirs(out)
        write_ints(os.path.join(out, "tokens.txt"), toks, ",")
        np.save(os.path.join(out, "logits.npy"), logits.astype(np.float32))
        write_ints(os.path.join(out, "depths.txt"), depths, "\n")
        note = ""
        if c.causal:
            for chunks in [SAVED_CHUNKS] + OTHER_CHUNKS:
                lc, dc = m.run(toks, chunks)
                err = float(np.abs(lc - logits).max())
                assert np.array_equal(dc, depths), f"{name}: depths differ with chunks {chunks}"
                assert err <= CHUNK_TOL, f"{name}: chunks {chunks}: max diff {err:.2e}"
                if chunks is SAVED_CHUNKS:
                    write_ints(os.path.join(out, "chunks.txt"), chunks, ",")
                    np.save(os.path.join(out, "logits_chunked.npy"), lc.astype(np.float32))
                    note = f" chunked max diff {err:.1e}"
        m32 = mor_ref.load_model(os.path.join(EXAMPLES, name), dtype=torch.float32)
        l32, d32 = m32.run(toks)
        err32 = float(np.abs(l32 - logits).max())
        assert np.array_equal(d32, depths), f"{name}: a routing decision flips in f32"
        assert err32 <= F32_TOL, f"{name}: f32 compute differs by {err32:.2e}"
        note += f" f32 max diff {err32:.1e}"
        manifest.append(f"{name} {int(c.causal)}")
        results[name] = logits
        shares = " ".join(f"{s:.2f}" for s in depth_shares(depths, c.N))
        summary.append((name, int(c.causal), c.N, shares))
        print(f"{name}: causal {int(c.causal)} N_r {c.N} share depth>=1..N_r: {shares}"
              f" min margin {margin:.3g} logits std {logits.std():.2f}{note}")
    err = float(np.abs(results["none_cycle"] - results["llama_unrolled_of_cycle"]).max())
    assert err <= 1e-6, f"invariant 3: none_cycle vs llama_unrolled_of_cycle differ by {err}"
    print(f"invariant 3: none_cycle == llama_unrolled_of_cycle (max diff {err:.1e})")
    with open(os.path.join(GOLDEN, "manifest.txt"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    write_readme(summary)
    if not mor_ref.self_test(EXAMPLES):
        sys.exit(1)


if __name__ == "__main__":
    main()
