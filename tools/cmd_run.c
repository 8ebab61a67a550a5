/* cmd_run.c: `morc dump` (print the IR of a model or IR file) and
 * `morc run` (execute a model on token ids, write logits and depths). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/llvm/llvm.h"
#include "backend/ref/ref.h"
#include "passes/pm.h"
#include "runtime/npy.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/memlimit.h"

static const char *usage_dump =
    "usage: morc dump MODEL [-o FILE] [--dot] [-passes=P1,P2,... | -O<n>] [inspection flags]\n"
    "\n"
    "Print the IR of MODEL (a model.json / HF config.json, or a .mor IR file, which is\n"
    "parsed, verified and printed again), after the pass pipeline when one is given.\n"
    "\n"
    "options:\n"
    "  -o FILE             write to FILE instead of standard output\n"
    "  --dot               write Graphviz DOT instead of IR text (render: dot -Tsvg)\n"
    "  -h, --help          show this help\n"
    "\n";

static const char *usage_run =
    "usage: morc run MODEL --tokens IDS [options]\n"
    "\n"
    "Run MODEL (model.json or HF config.json) on the token ids IDS and write the logits.\n"
    "\n"
    "options:\n"
    "  --backend NAME      ref: the reference interpreter (default); llvm: native code via\n"
    "                      the LLVM JIT (the same code `morc build` emits)\n"
    "  --threads N         llvm: worker threads (default: one per core)\n"
    "  --weights-dtype T   llvm: matmul weights as f32 (default), bf16, f16 or q8, as with\n"
    "                      morc build (compare their logits with the f32 ones)\n"
    "  --bf16-dot          llvm, with --weights-dtype bf16: as morc build --bf16-dot (AVX512-BF16)\n"
    "  --tokens IDS        comma-separated token ids, e.g. 1,2,3\n"
    "  --chunks SIZES      split the tokens into successive forward calls of these sizes\n"
    "                      (e.g. 4,1,1: a 4-token prefill then two 1-token decode steps);\n"
    "                      the sizes must add up to the number of tokens (default: one call)\n"
    "  --logits FILE.npy   write float32 logits [T, V] in NumPy .npy format\n"
    "  --depths FILE       write, per token, the number of recursions it ran (one per line)\n"
    "  --max-memory SIZE   refuse to run when the estimated memory (weights as f32, KV caches,\n"
    "                      activations) is above SIZE, e.g. 16G or 512M (default: physical memory)\n"
    "  -h, --help          show this help\n"
    "\n"
    "The reference backend interprets the IR after the pass pipeline (-passes=... or -O<n>),\n"
    "so any stage can be executed.\n"
    "\n";

int morc_cmd_dump(int argc, char **argv) {
  const char *model = NULL, *out = NULL;
  int dot = 0, pm_rc;
  mor_pm_opts *pm = mor_pm_opts_new();
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage_dump, stdout);
      fputs(mor_pm_help(), stdout);
      mor_pm_opts_free(pm);
      return 0;
    } else if ((pm_rc = morc_value_option("dump", &(morc_vopt){"-o", &out}, 1, argc, argv, &i)) != 0) {
      if (pm_rc < 0) return mor_pm_opts_free(pm), 2;
    } else if (!strcmp(a, "--dot")) {
      dot = 1;
    } else if ((pm_rc = morc_pm_option("dump", pm, argc, argv, &i)) != 0) {
      if (pm_rc < 0) return mor_pm_opts_free(pm), 2;
    } else if (a[0] == '-' && a[1]) {
      mor_pm_opts_free(pm);
      return morc_die_usage("dump", "unknown option '%s'", a);
    } else if (model) {
      return morc_die_usage("dump", "unexpected argument '%s' (one MODEL only)", a);
    } else {
      model = a;
    }
  }
  if (mor_pm_wants_list(pm)) {
    mor_pm_list(stdout);
    mor_pm_opts_free(pm);
    return 0;
  }
  if (!model) return mor_pm_opts_free(pm), morc_die_usage("dump", "%s", "missing MODEL");
  mor_err e = {{0}};
  mor_config *cfg;
  mor_weights *w;
  mor_module *m = morc_load_any(model, &cfg, &w, &e);
  if (!m) return mor_pm_opts_free(pm), morc_fail(&e);
  int rc = 0;
  mor_buf b = {0};
  if (mor_pm_run(m, pm, stderr, &e) != 0) {
    rc = morc_fail(&e);
  } else {
    if (dot) morc_write_dot(&b, m);
    else mor_print_module(&b, m);
    rc = morc_write_text_output(out, &b, &e) == 0 ? 0 : morc_fail(&e);
  }
  mor_pm_opts_free(pm);
  mor_buf_free(&b);
  mor_module_free(m);
  mor_weights_free(w);
  mor_config_free(cfg);
  return rc;
}

int morc_cmd_run(int argc, char **argv) {
  const char *model = NULL, *backend = "ref", *tokens_s = NULL, *chunks_s = NULL, *logits_path = NULL,
             *depths_path = NULL, *threads_s = NULL, *maxmem_s = NULL, *wdtype_s = NULL;
  const morc_vopt vo[] = {{"--backend", &backend},     {"--tokens", &tokens_s},        {"--chunks", &chunks_s},
                          {"--logits", &logits_path}, {"--depths", &depths_path},     {"--threads", &threads_s},
                          {"--weights-dtype", &wdtype_s}, {"--max-memory", &maxmem_s}};
  mor_pm_opts *pm = mor_pm_opts_new();
  int orc, bf16_dot = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage_run, stdout);
      fputs(mor_pm_help(), stdout);
      mor_pm_opts_free(pm);
      return 0;
    } else if ((orc = morc_pm_option("run", pm, argc, argv, &i)) != 0 ||
               (orc = morc_value_option("run", vo, sizeof vo / sizeof vo[0], argc, argv, &i)) != 0) {
      if (orc < 0) return mor_pm_opts_free(pm), 2;
    } else if (!strcmp(a, "--bf16-dot")) {
      bf16_dot = 1;
    } else if (a[0] == '-' && a[1]) {
      return mor_pm_opts_free(pm), morc_die_usage("run", "unknown option '%s'", a);
    } else if (model) {
      return mor_pm_opts_free(pm), morc_die_usage("run", "unexpected argument '%s' (one MODEL only)", a);
    } else {
      model = a;
    }
  }
  if (mor_pm_wants_list(pm)) {
    mor_pm_list(stdout);
    mor_pm_opts_free(pm);
    return 0;
  }
  if (!model) return mor_pm_opts_free(pm), morc_die_usage("run", "%s", "missing MODEL");
  if (!tokens_s) return mor_pm_opts_free(pm), morc_die_usage("run", "%s", "missing --tokens");
  if (strcmp(backend, "ref") != 0 && strcmp(backend, "llvm") != 0)
    return mor_pm_opts_free(pm), morc_die_usage("run", "unknown backend '%s' (available: ref, llvm)", backend);
  int wfmt = 0;
  if (bf16_dot && strcmp(backend, "llvm"))
    return mor_pm_opts_free(pm), morc_die_usage("run", "%s", "--bf16-dot needs --backend llvm");
  if (wdtype_s && (wfmt = mor_llvm_weights_format(wdtype_s)) < 0)
    return mor_pm_opts_free(pm), morc_die_usage("run", "--weights-dtype %s: expected f32, bf16, f16 or q8", wdtype_s);
  if (wdtype_s && strcmp(backend, "llvm"))
    return mor_pm_opts_free(pm), morc_die_usage("run", "%s", "--weights-dtype needs --backend llvm (the reference computes in f32)");
  if (bf16_dot) { /* bf16 weights and a CPU with AVX512-BF16, as morc build checks */
    mor_llvm_opts co;
    mor_llvm_opts_default(&co);
    co.weights_format = wfmt, co.bf16_dot = 1;
    mor_err te = {{0}};
    if (mor_llvm_check_target(&co, &te)) return mor_pm_opts_free(pm), morc_die_usage("run", "%s", te.msg);
  }
  int threads = 0;
  if (threads_s) {
    char *end;
    long v = strtol(threads_s, &end, 10);
    if (*end || v < 0 || v > 4096)
      return mor_pm_opts_free(pm), morc_die_usage("run", "--threads %s: expected a count in [0, 4096]", threads_s);
    threads = (int)v;
  }

  mor_err e = {{0}};
  uint64_t max_mem = morc_phys_mem();
  if (maxmem_s && mor_cli_parse_size(maxmem_s, "--max-memory", &max_mem, &e) != 0)
    return mor_pm_opts_free(pm), morc_die_usage("run", "%s", e.msg);
  int64_t *toks = NULL, *chunks = NULL;
  size_t nt = 0, nc = 0;
  if (mor_cli_parse_ints(tokens_s, "--tokens", &toks, &nt, &e) != 0)
    return mor_pm_opts_free(pm), morc_die_usage("run", "%s", e.msg);
  if (nt == 0) return mor_pm_opts_free(pm), morc_die_usage("run", "%s", "--tokens: no token ids given");
  if (chunks_s) {
    if (mor_cli_parse_ints(chunks_s, "--chunks", &chunks, &nc, &e) != 0 ||
        mor_cli_check_chunks(chunks, nc, nt, &e) != 0) {
      free(toks);
      free(chunks);
      mor_pm_opts_free(pm);
      return morc_die_usage("run", "%s", e.msg);
    }
  } else {
    chunks = mor_xmalloc(sizeof *chunks);
    chunks[0] = (int64_t)nt;
    nc = 1;
  }

  int rc = 1, wrote_logits = 0;
  mor_config *cfg = NULL;
  mor_weights *w = NULL;
  mor_module *m = NULL;
  mor_ref *ref = NULL;
  mor_ref_seq *seq = NULL;
  mor_llvm_jit *jit = NULL;
  mor_llvm_seq *jseq = NULL;
  float *logits = NULL;
  int32_t *depths = NULL, *ids = NULL;
  if (morc_ends_with(model, ".mor")) {
    mor_errf(&e, "%s: 'run' needs a model description (model.json or config.json), not IR text", model);
    goto out;
  }
  m = morc_load_any(model, &cfg, &w, &e);
  if (!m) goto out;
  int64_t V = cfg->vocab_size;
  if (mor_cli_check_tokens(toks, nt, V, cfg->max_pos, &e) != 0) goto out;
  ids = mor_xmalloc(sizeof *ids * nt);
  for (size_t i = 0; i < nt; i++) ids[i] = (int32_t)toks[i];
  if (mor_pm_run(m, pm, stderr, &e) != 0) goto out;
  if (morc_mem_check(model, m, (int64_t)nt, max_mem, maxmem_s != NULL, &e) != 0) goto out;
  if (!strcmp(backend, "llvm")) {
    mor_llvm_opts lo;
    mor_llvm_opts_default(&lo);
    lo.threads = threads;
    lo.weights_format = wfmt;
    lo.bf16_dot = bf16_dot;
    jit = mor_llvm_jit_new(m, w, &lo, &e);
    if (!jit || !(jseq = mor_llvm_seq_new(jit))) goto out;
  } else {
    ref = mor_ref_new(m, w, &e);
    if (!ref) goto out;
    seq = mor_ref_seq_new(ref);
  }
  logits = mor_xmalloc(sizeof *logits * nt * (size_t)V);
  depths = mor_xmalloc(sizeof *depths * nt);
  size_t off = 0;
  for (size_t c = 0; c < nc; c++) {
    int fr = jit ? mor_llvm_forward(jit, jseq, ids + off, chunks[c], logits + off * (size_t)V, depths + off, &e)
                 : mor_ref_forward(ref, seq, ids + off, chunks[c], logits + off * (size_t)V, depths + off, &e);
    if (fr != 0) goto out;
    off += (size_t)chunks[c];
  }
  if (logits_path) {
    char errbuf[512];
    if (morrt_npy_write_f32(logits_path, logits, (int64_t)nt, V, errbuf, sizeof errbuf) != 0) {
      mor_errf(&e, "%s", errbuf);
      goto out;
    }
    wrote_logits = 1;
  }
  if (depths_path) {
    mor_buf b = {0};
    for (size_t i = 0; i < nt; i++) mor_buf_printf(&b, "%d\n", depths[i]);
    int wr = mor_write_file_atomic(depths_path, b.data, b.len, &e);
    mor_buf_free(&b);
    if (wr != 0) goto out;
  }
  rc = 0;
out:
  if (rc) rc = morc_fail(&e);
  if (rc && wrote_logits) unlink(logits_path); /* a failed run leaves none of its outputs */
  mor_pm_opts_free(pm);
  free(toks);
  free(chunks);
  free(ids);
  free(logits);
  free(depths);
  mor_ref_seq_free(seq);
  mor_ref_free(ref);
  mor_llvm_seq_free(jseq);
  mor_llvm_jit_free(jit);
  mor_module_free(m);
  mor_weights_free(w);
  mor_config_free(cfg);
  return rc;
}

