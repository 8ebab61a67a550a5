/* build_cuda.c: `morc build MODEL --target cuda -o NAME`: plan the model's
 * forward call for the GPU (backend/cuda), compile the kernels with NVRTC
 * for --cuda-arch, and write a standalone executable: a copy of the CUDA
 * runner (morrt-cuda, built beside morc) followed by the launch plan with
 * the PTX and the cubin, the weights in their device format, and a trailer
 * (runtime/cuda_plan.h). --emit=cuda writes the .cu, --emit=ptx the PTX,
 * --emit=plan the launch plan as text. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "passes/pm.h"
#include "tools/commands.h"

#ifdef MORC_HAVE_CUDA
#include "backend/cuda/cuda.h"
#include "runtime/cuda_plan.h"

static const char *usage_cuda =
    "usage: morc build MODEL --target cuda -o NAME [options]\n"
    "\n"
    "Compile MODEL (model.json or HF config.json; IR text for --emit=cuda|ptx|plan) for NVIDIA GPUs:\n"
    "kernels in CUDA C compiled with NVRTC, run by a standalone executable that loads the CUDA\n"
    "driver at run time (run NAME --help).\n"
    "\n"
    "options:\n"
    "  -o NAME             the output (default: the model's folder name; for cuda, ptx and plan:\n"
    "                      standard output, also with -o -)\n"
    "  --emit=KIND         exe (default): the executable, with the kernels (PTX and cubin) and\n"
    "                        the weights inside\n"
    "                      cuda: the generated CUDA C source\n"
    "                      ptx: the PTX NVRTC made of it; cubin: the cubin\n"
    "                      plan: the launch plan of one forward call, as text\n"
    "  --cuda-arch SM      GPU architecture: sm_90 (default), sm_80, sm_86, sm_89, ...\n"
    "  --max-tokens N      most tokens per forward call (default: max_position_embeddings)\n"
    "  --weights-dtype D   matmul weights on the GPU: auto (default: bf16 when stored as bf16,\n"
    "                      else f32), f32, or bf16 (rounded)\n"
    "  --no-mma            no tensor cores: f32 SIMT GEMMs for bf16 weights too\n"
    "  --gemv-max-t N      calls of at most N tokens use the GEMV/decode kernels (default 8, 0-16)\n"
    "  --no-embed-weights  leave the weights out of the executable: it then takes the model's\n"
    "                      safetensors with --weights FILE when it runs\n"
    "  --runner FILE       the CUDA runner program to copy (default: morrt-cuda beside morc)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Pass pipeline options choose the IR the backend plans; the default is -O2.\n"
    "\n";

#ifdef MORC_CUDA_RUNNER
#define MORC_CUDA_RUNNER_PATH MORC_CUDA_RUNNER
#else
#define MORC_CUDA_RUNNER_PATH NULL
#endif

static int put(FILE *f, const void *p, size_t n, const char *path, mor_err *e) {
  if (n && fwrite(p, 1, n, f) != n) {
    mor_errf(e, "%s: write failed: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

static int pad_to(FILE *f, uint64_t *pos, uint64_t align, const char *path, mor_err *e) {
  static const char zeros[4096];
  uint64_t n = (align - *pos % align) % align;
  *pos += n;
  return put(f, zeros, (size_t)n, path, e);
}

/* one weight in its device format */
static int put_weight(FILE *f, const mor_tensor *t, mor_dtype dev, const char *path, mor_err *e) {
  if ((dev == MOR_F32 && t->dtype == MOR_F32) || (dev == MOR_BF16 && t->dtype == MOR_BF16))
    return put(f, t->data, (size_t)t->nbytes, path, e);
  enum { CH = 1 << 16 };
  static float fb[CH];
  static uint16_t hb[CH];
  for (int64_t i = 0; i < t->numel; i += CH) {
    int64_t n = t->numel - i < CH ? t->numel - i : CH;
    for (int64_t j = 0; j < n; j++) {
      float v = mor_tensor_get(t, i + j);
      if (dev == MOR_BF16) hb[j] = mor_f32_to_bf16(v);
      else fb[j] = v;
    }
    if (put(f, dev == MOR_BF16 ? (void *)hb : (void *)fb, (size_t)n * (dev == MOR_BF16 ? 2 : 4), path, e)) return -1;
  }
  return 0;
}

static void le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* runner + plan + weights + trailer, written to a temporary file renamed into place */
static int write_exe(const char *out, const char *runner, const mor_cuda_prog *cp, const mor_weights *w, int embed,
                     const char *tokenizer, size_t tok_len, mor_err *e) {
  size_t rlen;
  char *rbytes = mor_read_file(runner, &rlen, e);
  if (!rbytes) return -1;
  mor_buf plan = {0};
  mor_cuda_write_plan(cp, tokenizer, tok_len, &plan);
  char *tmp = mor_xasprintf("%s.tmp.%d", out, (int)getpid());
  FILE *f = fopen(tmp, "wb");
  int rc = -1;
  if (!f) {
    mor_errf(e, "%s: %s", out, strerror(errno));
    goto done;
  }
  uint64_t pos = 0;
  if (put(f, rbytes, rlen, out, e)) goto done;
  pos += rlen;
  if (pad_to(f, &pos, 4096, out, e)) goto done;
  uint64_t plan_off = pos;
  if (put(f, plan.data, plan.len, out, e)) goto done;
  pos += plan.len;
  if (pad_to(f, &pos, 4096, out, e)) goto done;
  uint64_t w_off = embed ? pos : 0;
  for (int64_t i = 0; embed && i < mor_cuda_n_weights(cp); i++) {
    mor_dtype dev;
    uint64_t off, bytes;
    const char *name = mor_cuda_weight(cp, i, &dev, &off, &bytes);
    const mor_tensor *t = mor_weights_find(w, name);
    if (!t || (uint64_t)t->numel * (dev == MOR_BF16 ? 2 : 4) != bytes) {
      char shown[200];
      mor_errf(e, "weight '%s' is missing from the weight files or has another size", mor_esc(name, shown, sizeof shown));
      goto done;
    }
    if (pos - w_off < off && pad_to(f, &pos, 256, out, e)) goto done;
    if (pos - w_off != off) {
      mor_errf(e, "internal error: weight layout");
      goto done;
    }
    if (put_weight(f, t, dev, out, e)) goto done;
    pos += bytes;
  }
  if (embed && pos - w_off > mor_cuda_weights_bytes(cp)) {
    mor_errf(e, "internal error: weight layout");
    goto done;
  }
  while (embed && pos - w_off < mor_cuda_weights_bytes(cp)) {
    static const char zeros[256];
    uint64_t n = mor_cuda_weights_bytes(cp) - (pos - w_off);
    if (n > sizeof zeros) n = sizeof zeros;
    if (put(f, zeros, (size_t)n, out, e)) goto done;
    pos += n;
  }
  unsigned char tr[MORCU_TRAILER_SIZE];
  memcpy(tr, MORCU_TRAILER_MAGIC, 8);
  le64(tr + 8, plan_off);
  le64(tr + 16, plan.len);
  le64(tr + 24, w_off);
  if (put(f, tr, sizeof tr, out, e)) goto done;
  if (fclose(f) != 0) {
    f = NULL;
    mor_errf(e, "%s: %s", out, strerror(errno));
    goto done;
  }
  f = NULL;
  if (chmod(tmp, 0755) != 0 || rename(tmp, out) != 0) {
    mor_errf(e, "%s: %s", out, strerror(errno));
    goto done;
  }
  rc = 0;
done:
  if (f) fclose(f);
  if (rc) unlink(tmp);
  free(tmp);
  free(rbytes);
  mor_buf_free(&plan);
  return rc;
}

int morc_build_cuda(int argc, char **argv) {
  const char *model = NULL, *out = NULL, *emit = "exe", *runner_s = NULL, *maxtok_s = NULL, *wdt_s = NULL,
             *gemv_s = NULL, *target = NULL;
  int pm_rc, embed = 1;
  mor_cuda_opts co;
  mor_cuda_opts_default(&co);
  mor_pm_opts *pm = mor_pm_opts_new();
  {
    char *dflt[1] = {"-O2"};
    int k = 0;
    mor_err pe;
    if (mor_pm_parse_arg(pm, 1, dflt, &k, &pe) != 1) return mor_pm_opts_free(pm), morc_die_usage("build", "%s", pe.msg);
  }
  const morc_vopt vo[] = {{"--emit", &emit},           {"-o", &out},
                          {"--target", &target},       {"--cuda-arch", &co.arch},
                          {"--max-tokens", &maxtok_s}, {"--weights-dtype", &wdt_s},
                          {"--gemv-max-t", &gemv_s},   {"--runner", &runner_s}};
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage_cuda, stdout);
      fputs(mor_pm_help(), stdout);
      mor_pm_opts_free(pm);
      return 0;
    } else if ((pm_rc = morc_pm_option("build", pm, argc, argv, &i)) != 0 ||
               (pm_rc = morc_value_option("build", vo, sizeof vo / sizeof vo[0], argc, argv, &i)) != 0) {
      if (pm_rc < 0) return mor_pm_opts_free(pm), 2;
    } else if (!strcmp(a, "--no-mma")) {
      co.mma = 0;
    } else if (!strcmp(a, "--no-embed-weights")) {
      embed = 0;
    } else if (a[0] == '-' && a[1]) {
      return mor_pm_opts_free(pm), morc_die_usage("build", "unknown option '%s' (with --target cuda)", a);
    } else if (model) {
      return mor_pm_opts_free(pm), morc_die_usage("build", "unexpected argument '%s' (one MODEL only)", a);
    } else {
      model = a;
    }
  }
  if (mor_pm_wants_list(pm)) {
    mor_pm_list(stdout);
    mor_pm_opts_free(pm);
    return 0;
  }
  if (target && strcmp(target, "cuda") != 0) return mor_pm_opts_free(pm), morc_die_usage("build", "--target %s: expected cuda here", target);
  int k_exe = !strcmp(emit, "exe"), k_cuda = !strcmp(emit, "cuda"), k_ptx = !strcmp(emit, "ptx"),
      k_cubin = !strcmp(emit, "cubin"), k_plan = !strcmp(emit, "plan");
  if (!k_exe && !k_cuda && !k_ptx && !k_cubin && !k_plan)
    return mor_pm_opts_free(pm), morc_die_usage("build", "--emit=%s: with --target cuda, expected exe, cuda, ptx, cubin or plan", emit);
  if (!model) return mor_pm_opts_free(pm), morc_die_usage("build", "%s", "missing MODEL");
  if (maxtok_s) {
    char *end;
    long long v = strtoll(maxtok_s, &end, 10);
    if (*end || v < 1) return mor_pm_opts_free(pm), morc_die_usage("build", "--max-tokens %s: expected a count >= 1", maxtok_s);
    co.max_tokens = v;
  }
  if (gemv_s) {
    char *end;
    long v = strtol(gemv_s, &end, 10);
    if (*end || v < 0 || v > 16) return mor_pm_opts_free(pm), morc_die_usage("build", "--gemv-max-t %s: expected 0 to 16", gemv_s);
    co.gemv_max_t = (int)v;
  }
  if (wdt_s) {
    if (!strcmp(wdt_s, "auto")) co.weights_dtype = -1;
    else if (!strcmp(wdt_s, "f32")) co.weights_dtype = MOR_F32;
    else if (!strcmp(wdt_s, "bf16")) co.weights_dtype = MOR_BF16;
    else return mor_pm_opts_free(pm), morc_die_usage("build", "--weights-dtype %s: expected auto, f32 or bf16", wdt_s);
  }
  mor_err e = {{0}};
  int rc = 1;
  mor_config *cfg = NULL;
  mor_weights *w = NULL;
  mor_module *m = NULL;
  mor_cuda_prog *cp = NULL;
  char *dflt_out = NULL, *runner = NULL, *tok = NULL;
  size_t tok_len = 0;
  if (out && !strcmp(out, "-") && (k_cuda || k_ptx || k_plan)) out = NULL; /* standard output */
  if (!out && (k_exe || k_cubin)) {
    if (k_cubin) {
      rc = morc_die_usage("build", "%s", "-o FILE is needed with --emit=cubin");
      goto done;
    }
    char *dir = mor_dirname(model);
    char *absd = realpath(dir, NULL);
    const char *b = strrchr(absd ? absd : dir, '/');
    dflt_out = mor_xstrdup(b ? b + 1 : (absd ? absd : dir));
    free(absd);
    free(dir);
    out = dflt_out;
  }
  m = morc_load_any(model, &cfg, &w, &e);
  if (!m) goto done;
  if (!w && k_exe && embed) {
    mor_errf(&e, "%s: IR text has no weights: use a model description, or --emit=cuda|ptx|cubin|plan", model);
    goto done;
  }
  if (mor_pm_run(m, pm, stderr, &e) != 0) goto done;
  if (k_exe) {
    runner = morc_find_file(runner_s, "--runner", "MORC_CUDA_RUNNER", "morrt-cuda", MORC_CUDA_RUNNER_PATH,
                            "the CUDA runner morrt-cuda", &e);
    if (!runner) goto done;
  }
  cp = mor_cuda_plan(m, &co, &e);
  if (!cp) goto done;
  if (k_cuda) {
    mor_buf b = {0};
    mor_buf_puts(&b, mor_cuda_source(cp));
    rc = morc_write_text_output(out, &b, &e) ? 1 : 0;
    mor_buf_free(&b);
    goto done;
  }
  if (k_plan) {
    mor_buf b = {0};
    mor_cuda_print_plan(cp, &b);
    rc = morc_write_text_output(out, &b, &e) ? 1 : 0;
    mor_buf_free(&b);
    goto done;
  }
  if (mor_cuda_nvrtc(cp, &e)) goto done;
  if (k_ptx) {
    mor_buf b = {0};
    mor_buf_puts(&b, mor_cuda_ptx(cp));
    rc = morc_write_text_output(out, &b, &e) ? 1 : 0;
    mor_buf_free(&b);
    goto done;
  }
  if (k_cubin) {
    size_t n;
    const void *cb = mor_cuda_cubin(cp, &n);
    rc = mor_write_file_atomic(out, cb, n, &e) ? 1 : 0;
    goto done;
  }
  if (cfg && cfg->tokenizer) {
    tok = mor_read_file(cfg->tokenizer, &tok_len, &e);
    if (!tok) goto done;
  }
  rc = write_exe(out, runner, cp, w, embed, tok, tok_len, &e) ? 1 : 0;
done:
  if (rc == 1) morc_fail(&e);
  mor_cuda_prog_free(cp);
  mor_pm_opts_free(pm);
  mor_module_free(m);
  mor_weights_free(w);
  mor_config_free(cfg);
  free(dflt_out);
  free(runner);
  free(tok);
  return rc;
}

#else /* no CUDA toolkit when morc was built */

int morc_build_cuda(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "morc: error: --target cuda: this morc was built without the CUDA toolkit (NVRTC); "
                  "rebuild it where /usr/local/cuda is installed\n");
  return 1;
}

#endif
