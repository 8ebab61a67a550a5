/* build.c: `morc build MODEL -o NAME`: compile a model with the LLVM backend
 * into a standalone executable (generated object + libmorrt.a + the runtime
 * main, linked by the system C compiler), a shared library, an object +
 * header bundle, or .ll / .s / .o. Weights go beside the output as one
 * safetensors file holding exactly the tensors the program binds, or inside
 * it (--embed-weights); the model's tokenizer.json is embedded. */
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/llvm/llvm.h"
#include "passes/pm.h"
#include "runtime/safetensors.h"
#include "tools/commands.h"

extern char **environ;

static const char *usage_build =
    "usage: morc build MODEL -o NAME [options]\n"
    "\n"
    "Compile MODEL (model.json or HF config.json) to native code with LLVM.\n"
    "\n"
    "options:\n"
    "  -o NAME             the output (default: the model's folder name)\n"
    "  --emit=KIND         exe (default): a standalone program (run NAME --help)\n"
    "                      lib: a shared library exporting the libmorrt C API and ID_model,\n"
    "                        plus a header ID.h beside it (ID: see --name)\n"
    "                      bundle: NAME.o + NAME.h (entry points, arena and KV sizes) to link\n"
    "                        with libmorrt.a yourself\n"
    "                      obj, asm, llvm: the object file, assembly or LLVM IR text alone\n"
    "  --weights-dtype T   how matmul weights are stored and read: f32 (default), bf16, f16\n"
    "                      (computed with f32 accumulation), q8 (8-bit, one f32 scale per\n"
    "                      32 values of a row); converted once when the weights are loaded\n"
    "  --bf16-dot          with --weights-dtype bf16, on a CPU with AVX512-BF16: prefill\n"
    "                      matmuls round their activations to bf16 and multiply with\n"
    "                      vdpbf16ps (prefill about 1.4x that of bf16 alone; less exact)\n"
    "  --embed-weights     put the weights inside the output; otherwise they are written to\n"
    "                      NAME.safetensors beside it (exe, lib, bundle)\n"
    "  --target TRIPLE     target triple (default: this machine); exe and lib need the host\n"
    "  --cpu NAME          target CPU (default: this machine's, e.g. znver4; 'generic' for any,\n"
    "                      'native' for this machine's)\n"
    "  --features LIST     target features, e.g. +avx2,+fma (default: the CPU's)\n"
    "  --llvm-opt N        LLVM optimization level 0-3 (default 3)\n"
    "  --max-tokens N      most tokens per forward call (default: max_position_embeddings);\n"
    "                      sizes the arena, longer prompts are fed in pieces\n"
    "  --name ID           C identifier prefix of the exported symbols (default: from NAME)\n"
    "  --runtime-lib FILE  libmorrt.a to link (default: the one built with morc)\n"
    "  --cc CC             C compiler that links (default: $CC, else cc)\n"
    "  -v                  print the link command\n"
    "  -h, --help          show this help\n"
    "\n"
    "Pass pipeline options (as for morc dump/run) choose the IR the backend lowers; the\n"
    "default is -O2 (depths specialized, shared block fused and outlined, KV and memory\n"
    "planned); -O0 compiles the high-level IR as it is.\n"
    "\n";

#ifdef MORC_RUNTIME_LIB
#define MORC_RUNTIME_LIB_PATH MORC_RUNTIME_LIB
#else
#define MORC_RUNTIME_LIB_PATH NULL
#endif

typedef enum { K_EXE, K_LIB, K_BUNDLE, K_OBJ, K_ASM, K_LLVM } kind_t;

static int run_cmd(char *const *argv, int verbose, mor_err *e) {
  if (verbose) {
    for (int i = 0; argv[i]; i++) fprintf(stderr, "%s%s", i ? " " : "", argv[i]);
    fputc('\n', stderr);
  }
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
  if (rc != 0) {
    mor_errf(e, "cannot run the C compiler '%s': %s (set --cc or $CC)", argv[0], strerror(rc));
    return -1;
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) {
      mor_errf(e, "waiting for '%s': %s", argv[0], strerror(errno));
      return -1;
    }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    mor_errf(e, "linking with '%s' failed (exit status %d); run with -v to see the command", argv[0],
             WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return -1;
  }
  return 0;
}

/* A C identifier from the basename of a path: "out/my-model.so" -> "my_model". */
static char *ident_from(const char *path) {
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  if (!strncmp(b, "lib", 3) && strstr(b, ".so")) b += 3;
  char *s = mor_xstrdup(*b ? b : "model");
  char *dot = strchr(s, '.');
  if (dot && dot != s) *dot = 0;
  for (char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) *p = '_';
  if (s[0] >= '0' && s[0] <= '9') {
    char *t = mor_xasprintf("m_%s", s);
    free(s);
    s = t;
  }
  return s;
}

static char *basename_of(const char *p) {
  const char *b = strrchr(p, '/');
  return mor_xstrdup(b ? b + 1 : p);
}

/* The tensors the program binds, in their stored form, as one file. */
static int write_weights(const char *path, const mor_module *m, const mor_weights *w, mor_err *e) {
  morrt_st_tensor *t = mor_xcalloc((size_t)m->n_globals + 1, sizeof *t);
  int n = 0;
  for (int i = 0; i < m->n_globals; i++) {
    const mor_global *g = &m->globals[i];
    if (g->kind != MOR_GLOBAL_WEIGHT) continue;
    const mor_tensor *src = mor_weights_find(w, g->name);
    if (!src) {
      free(t);
      mor_errf(e, "weight @%s is not in the model's weight files", MOR_SYM(g->name));
      return -1;
    }
    t[n].name = src->name;
    t[n].dtype = src->dtype == MOR_F32 ? 0 : src->dtype == MOR_F16 ? 1 : 2;
    t[n].dtype_name = morrt_dtype_str(t[n].dtype);
    t[n].rank = src->rank;
    for (int d = 0; d < src->rank; d++) t[n].shape[d] = src->shape[d];
    t[n].data = src->data;
    t[n].nbytes = src->nbytes;
    n++;
  }
  const char *meta[4] = {"format", "pt", "morc_model", m->name ? m->name : "model"};
  char err[1024];
  int rc = morrt_st_write(path, n, t, 2, meta, err, sizeof err);
  free(t);
  if (rc) mor_errf(e, "%s", err);
  return rc;
}

static int write_header(const char *path, const char *id, const char *model, const mor_module *m,
                        const mor_llvm_info *info, const char *weights_file, int embedded, mor_err *e) {
  mor_buf b = {0};
  char *up = mor_xstrdup(id);
  for (char *p = up; *p; p++)
    if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
  mor_buf_printf(&b, "/* %s.h: generated by `morc build` from ", id);
  mor_buf_c_comment(&b, model); /* a path: may hold "*" "/", newlines, any byte */
  mor_buf_printf(&b,
                 "; do not edit.\n"
                 " * Link %s.o with libmorrt.a (-lm -lpthread -ldl) and open the model with\n"
                 " * morrt_model_open(&%s_model, ...): see runtime/morrt.h. Compiled for %s (%s). */\n"
                 "#ifndef %s_H\n#define %s_H\n#include \"runtime/morrt.h\"\n\n"
                 "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
                 "/* the compiled model: pass it to morrt_model_open */\n"
                 "extern const morrt_desc %s_model;\n"
                 "/* its forward entry (morrt_forward calls it with checked inputs) */\n"
                 "void %s_forward(const morrt_exec *x, const int32_t *tokens, const int32_t *pos,\n"
                 "    int64_t T, float *logits, int32_t *depths);\n\n",
                 id, id, info->triple, info->cpu, up, up, id, id);
  mor_buf_printf(&b, "#define %s_VOCAB_SIZE %lld\n", up, (long long)mor_mattr_int(m, "vocab_size", 0));
  mor_buf_printf(&b, "#define %s_MAX_POSITIONS %lld\n", up, (long long)mor_mattr_int(m, "max_position_embeddings", 0));
  mor_buf_printf(&b, "#define %s_MAX_TOKENS %lld   /* per forward call */\n", up, (long long)info->max_tokens);
  mor_buf_printf(&b, "#define %s_NUM_RECURSIONS %lld\n", up, (long long)mor_mattr_int(m, "num_recursions", 1));
  mor_buf_printf(&b, "#define %s_ARENA_BYTES %lldLL   /* scratch of one forward call, per model */\n", up,
                 (long long)info->arena_bytes);
  mor_buf_printf(&b, "#define %s_KV_BYTES %lldLL   /* KV caches of one sequence at full context */\n", up,
                 (long long)info->kv_bytes);
  mor_buf_printf(&b, "#define %s_KV_CACHES %lld\n", up, (long long)info->n_kv_stores);
  mor_buf_printf(&b, "#define %s_WEIGHTS %lld   /* tensors bound */\n", up, (long long)info->n_weights);
  if (embedded) mor_buf_printf(&b, "#define %s_WEIGHTS_EMBEDDED 1\n", up);
  else if (weights_file) {
    mor_buf_printf(&b, "#define %s_WEIGHTS_FILE \"", up);
    mor_buf_c_string(&b, weights_file);
    mor_buf_puts(&b, "\"\n");
  }
  mor_buf_printf(&b, "\n#ifdef __cplusplus\n}\n#endif\n#endif\n");
  int rc = mor_write_file_atomic(path, b.data, b.len, e);
  mor_buf_free(&b);
  free(up);
  return rc;
}

/* symbols a shared library must export from libmorrt.a */
static const char *const lib_api[] = {
    "morrt_model_open", "morrt_model_bind", "morrt_forward", "morrt_forward_batch", "morrt_sample",
    "morrt_argmax", "morrt_tokenizer_load", "morrt_tokenizer_encode", "morrt_npy_write_f32", NULL};

static int parse_kind(const char *s, kind_t *k) {
  static const struct { const char *n; kind_t k; } t[] = {{"exe", K_EXE}, {"lib", K_LIB}, {"bundle", K_BUNDLE},
                                                          {"obj", K_OBJ}, {"asm", K_ASM}, {"llvm", K_LLVM}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (!strcmp(s, t[i].n)) {
      *k = t[i].k;
      return 0;
    }
  return -1;
}

int morc_cmd_build(int argc, char **argv) {
  for (int i = 0; i < argc; i++)
    if ((!strcmp(argv[i], "--target") && i + 1 < argc && !strcmp(argv[i + 1], "cuda")) || !strcmp(argv[i], "--target=cuda"))
      return morc_build_cuda(argc, argv);
  const char *model = NULL, *out = NULL, *emit = "exe", *name = NULL, *rtlib = NULL, *cc = getenv("CC");
  const char *maxtok_s = NULL, *llvmopt_s = NULL, *wdtype_s = NULL;
  int embed = 0, verbose = 0, pm_rc;
  mor_llvm_opts lo;
  mor_llvm_opts_default(&lo);
  mor_pm_opts *pm = mor_pm_opts_new();
  {
    char *dflt[1] = {"-O2"};
    int k = 0;
    mor_err pe;
    if (mor_pm_parse_arg(pm, 1, dflt, &k, &pe) != 1) return mor_pm_opts_free(pm), morc_die_usage("build", "%s", pe.msg);
  }
  const morc_vopt vo[] = {{"--emit", &emit},          {"-o", &out},
                          {"--target", &lo.triple},   {"--cpu", &lo.cpu},
                          {"--features", &lo.features}, {"--name", &name},
                          {"--runtime-lib", &rtlib},  {"--cc", &cc},
                          {"--max-tokens", &maxtok_s}, {"--llvm-opt", &llvmopt_s},
                          {"--weights-dtype", &wdtype_s}};
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage_build, stdout);
      fputs(mor_pm_help(), stdout);
      mor_pm_opts_free(pm);
      return 0;
    } else if ((pm_rc = morc_pm_option("build", pm, argc, argv, &i)) != 0 ||
               (pm_rc = morc_value_option("build", vo, sizeof vo / sizeof vo[0], argc, argv, &i)) != 0) {
      if (pm_rc < 0) return mor_pm_opts_free(pm), 2;
    } else if (!strcmp(a, "--embed-weights")) {
      embed = 1;
    } else if (!strcmp(a, "--bf16-dot")) {
      lo.bf16_dot = 1;
    } else if (!strcmp(a, "-v")) {
      verbose = 1;
    } else if (a[0] == '-' && a[1]) {
      return mor_pm_opts_free(pm), morc_die_usage("build", "unknown option '%s'", a);
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
  kind_t kind;
  if (parse_kind(emit, &kind))
    return mor_pm_opts_free(pm), morc_die_usage("build", "--emit=%s: expected exe, lib, bundle, obj, asm or llvm", emit);
  if (!model) return mor_pm_opts_free(pm), morc_die_usage("build", "%s", "missing MODEL");
  if (maxtok_s) {
    char *end;
    long long v = strtoll(maxtok_s, &end, 10);
    if (*end || v < 1) return mor_pm_opts_free(pm), morc_die_usage("build", "--max-tokens %s: expected a count >= 1", maxtok_s);
    lo.max_tokens = v;
  }
  if (llvmopt_s) {
    if (strlen(llvmopt_s) != 1 || llvmopt_s[0] < '0' || llvmopt_s[0] > '3')
      return mor_pm_opts_free(pm), morc_die_usage("build", "--llvm-opt %s: expected 0, 1, 2 or 3", llvmopt_s);
    lo.opt_level = llvmopt_s[0] - '0';
  }
  if (wdtype_s && (lo.weights_format = mor_llvm_weights_format(wdtype_s)) < 0)
    return mor_pm_opts_free(pm), morc_die_usage("build", "--weights-dtype %s: expected f32, bf16, f16 or q8", wdtype_s);
  if ((kind == K_EXE || kind == K_LIB) && lo.triple && !mor_llvm_is_host_triple(lo.triple))
    return mor_pm_opts_free(pm),
           morc_die_usage("build", "--target %s: executables and libraries are linked here, so they need this "
                          "machine's target; use --emit=obj, asm, bundle or llvm to cross-compile", lo.triple);
  if (lo.cpu || lo.features || lo.bf16_dot) {
    mor_err te = {{0}};
    if (mor_llvm_check_target(&lo, &te)) return mor_pm_opts_free(pm), morc_die_usage("build", "%s", te.msg);
  }

  mor_err e = {{0}};
  int rc = 1;
  mor_config *cfg = NULL;
  mor_weights *w = NULL;
  mor_module *m = NULL;
  mor_llvm_module *lm = NULL;
  char *dflt_out = NULL, *id = NULL, *wfile = NULL, *wbase = NULL, *tmp_w = NULL, *tmp_o = NULL, *lib = NULL;
  char *hdr = NULL, *objp = NULL, *tokabs = NULL;
  if (!out) {
    char *dir = mor_dirname(model);
    char *absd = realpath(dir, NULL);
    dflt_out = basename_of(absd ? absd : dir);
    free(absd);
    free(dir);
    out = dflt_out;
  }
  id = name ? mor_xstrdup(name) : ident_from(out);
  m = morc_load_any(model, &cfg, &w, &e);
  if (!m) goto done;
  if (!w && (kind == K_EXE || kind == K_LIB || kind == K_BUNDLE || embed)) {
    mor_errf(&e, "%s: IR text has no weights: use a model description, or --emit=obj|asm|llvm", model);
    goto done;
  }
  if (mor_pm_run(m, pm, stderr, &e) != 0) goto done;
  if (kind == K_EXE || kind == K_LIB) {
    lib = morc_find_file(rtlib, "--runtime-lib", "MORC_RUNTIME_LIB", "../lib/libmorrt.a", MORC_RUNTIME_LIB_PATH,
                         "libmorrt.a", &e);
    if (!lib) goto done;
  }
  /* weights: a temp file to embed, or NAME.safetensors beside the output */
  if (embed) {
    char tmpl[] = "/tmp/morc-weights-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) {
      mor_errf(&e, "cannot create a temporary file: %s", strerror(errno));
      goto done;
    }
    close(fd);
    tmp_w = mor_xstrdup(tmpl);
    if (write_weights(tmp_w, m, w, &e)) goto done;
    lo.embed_weights = tmp_w;
  } else if (kind == K_EXE || kind == K_LIB || kind == K_BUNDLE) {
    if (kind == K_LIB) {
      char *dir = mor_dirname(out);
      wfile = mor_xasprintf("%s/%s.safetensors", dir, id);
      free(dir);
    } else {
      wfile = mor_xasprintf("%s.safetensors", out);
    }
    wbase = basename_of(wfile);
    if (write_weights(wfile, m, w, &e)) goto done;
    lo.weights_file = wbase;
  }
  if (cfg && cfg->tokenizer && kind != K_LLVM) {
    tokabs = realpath(cfg->tokenizer, NULL);
    if (!tokabs) {
      mor_errf(&e, "%s: tokenizer: %s", cfg->tokenizer, strerror(errno));
      goto done;
    }
    lo.embed_tokenizer = tokabs;
  }
  lo.name = id;
  lo.main_alias = kind == K_EXE;
  lm = mor_llvm_compile(m, &lo, &e);
  if (!lm) goto done;
  mor_llvm_info info;
  mor_llvm_get_info(lm, &info);
  switch (kind) {
  case K_LLVM: rc = mor_llvm_write(lm, MOR_EMIT_LLVM, out, &e) ? 1 : 0; goto done;
  case K_ASM: rc = mor_llvm_write(lm, MOR_EMIT_ASM, out, &e) ? 1 : 0; goto done;
  case K_OBJ: rc = mor_llvm_write(lm, MOR_EMIT_OBJ, out, &e) ? 1 : 0; goto done;
  case K_BUNDLE:
    objp = mor_xasprintf("%s.o", out);
    hdr = mor_xasprintf("%s.h", out);
    if (mor_llvm_write(lm, MOR_EMIT_OBJ, objp, &e) ||
        write_header(hdr, id, model, m, &info, wbase, embed, &e))
      goto done;
    rc = 0;
    goto done;
  case K_EXE:
  case K_LIB: {
    char tmpl[] = "/tmp/morc-obj-XXXXXX.o";
    int fd = mkstemps(tmpl, 2);
    if (fd < 0) {
      mor_errf(&e, "cannot create a temporary file: %s", strerror(errno));
      goto done;
    }
    close(fd);
    tmp_o = mor_xstrdup(tmpl);
    if (mor_llvm_write(lm, MOR_EMIT_OBJ, tmp_o, &e)) goto done;
    char *av[64];
    int k = 0;
    av[k++] = (char *)(cc && *cc ? cc : "cc");
    if (kind == K_LIB) av[k++] = "-shared";
    av[k++] = "-o";
    av[k++] = (char *)out;
    av[k++] = tmp_o;
    char *undef[16];
    int nu = 0;
    if (kind == K_LIB)
      for (int i = 0; lib_api[i]; i++) av[k++] = undef[nu++] = mor_xasprintf("-Wl,--undefined=%s", lib_api[i]);
    av[k++] = lib;
#ifdef MORC_LINK_FLAGS
    av[k++] = MORC_LINK_FLAGS;
#endif
    av[k++] = "-lm";
    av[k++] = "-lpthread";
    av[k++] = "-ldl";
    av[k] = NULL;
    int lr = run_cmd(av, verbose, &e);
    for (int i = 0; i < nu; i++) free(undef[i]);
    if (lr) goto done;
    if (kind == K_LIB) {
      char *dir = mor_dirname(out);
      hdr = mor_xasprintf("%s/%s.h", dir, id);
      free(dir);
      if (write_header(hdr, id, model, m, &info, wbase, embed, &e)) goto done;
    }
    rc = 0;
    goto done;
  }
  }
done:
  if (rc) rc = morc_fail(&e);
  if (tmp_w) unlink(tmp_w);
  if (tmp_o) unlink(tmp_o);
  mor_llvm_module_free(lm);
  mor_pm_opts_free(pm);
  mor_module_free(m);
  mor_weights_free(w);
  mor_config_free(cfg);
  free(dflt_out);
  free(id);
  free(wfile);
  free(wbase);
  free(tmp_w);
  free(tmp_o);
  free(lib);
  free(hdr);
  free(objp);
  free(tokabs);
  return rc;
}
