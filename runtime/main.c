/* main.c: main() of the executables `morc build` makes. It runs the model
 * compiled into the program (the descriptor morrt_main_model): encodes a
 * prompt (or takes token ids), runs it, samples a continuation, and prints
 * text, routing and statistics. docs/runtime.md describes the options.
 *
 * This file lives in libmorrt.a; the linker only pulls it in for a program
 * that has no main() of its own (a generated executable), so libraries and
 * tools that link libmorrt are not affected. Everything here but main() is
 * static. Exit codes: 0 success, 1 bad input, 2 bad usage, 3 internal. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "runtime/cliopt.h"
#include "runtime/morrt.h"
#include "runtime/npy.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"

extern const morrt_desc morrt_main_model;

static const char *prog = "model";

static void usage(FILE *f) {
  const morrt_desc *d = &morrt_main_model;
  fprintf(f,
          "usage: %s (--prompt TEXT | --tokens IDS) [options]\n"
          "\n"
          "Runs %s (compiled by morc for %s, %s): the prompt, then generates a continuation.\n"
          "\n"
          "input:\n"
          "  --prompt TEXT       text to continue (needs the model's tokenizer)\n"
          "  --tokens IDS        comma-separated prompt token ids, e.g. 1,2,3\n"
          "  --chunks SIZES      feed the prompt as successive calls of these sizes (e.g. 4,1,1);\n"
          "                      they must add up to the prompt length (default: one call)\n"
          "generation:\n"
          "  -n N                tokens to generate (default %d; 0: only run the prompt)\n"
          "  --temp T            temperature (default 0.8; 0: greedy)\n"
          "  --top-k K           sample among the K most likely tokens (default 40; 0: all)\n"
          "  --top-p P           nucleus sampling threshold (default 0.95; 1: off)\n"
          "  --seed S            random seed (default: from the clock; printed by --stats)\n"
          "output:\n"
          "  --logits FILE.npy   write the prompt's float32 logits [T, V]\n"
          "  --depths FILE       write, per prompt token, the recursions it ran (one per line)\n"
          "  --stats             print tokens/s of prompt and generation, tokens per depth, KV bytes\n"
          "  --show-routing      print every token with the number of recursions it ran\n"
          "                      (colored on a terminal)\n"
          "runtime:\n"
          "  --threads N         worker threads, this one included (default: one per CPU this process\n"
          "                      may use; then each thread is pinned to a CPU of its own)\n"
          "  --no-pin            do not pin the threads to CPUs\n"
          "  --weights FILE      weights (.safetensors or .index.json) instead of %s%s\n"
          "  --tokenizer FILE    tokenizer.json instead of the embedded one\n"
          "  --info              print what the program was compiled for and exit\n"
          "  -h, --help          show this help\n"
          "\n"
          "Exit codes: 0 success, 1 bad input (ids, prompt past the context, weights), 2 bad usage.\n",
          prog, d->name, d->target, d->cpu, d->whole_sequence ? 0 : 32,
          d->weights_blob ? "the embedded ones" : d->weights_file ? d->weights_file : "(none built in)",
          !d->weights_blob && d->weights_file ? " beside the program" : "");
}

static int die_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "%s: error: ", prog);
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(see '%s --help')\n", prog);
  return 2;
}

static int fail(const char *msg) {
  fprintf(stderr, "%s: error: %s\n", prog, msg);
  return 1;
}

/* "1,2,3" -> ints >= 0; -1 on a malformed list */
static int parse_ids(const char *s, int64_t **out, size_t *n) {
  size_t cap = 16;
  *n = 0;
  *out = malloc(sizeof **out * cap);
  if (!*out) return -1;
  const char *p = s;
  while (*p) {
    while (*p == ' ') p++;
    if (*p < '0' || *p > '9') return -1;
    errno = 0;
    char *end;
    long long v = strtoll(p, &end, 10);
    if (errno || v > INT32_MAX) return -1;
    if (*n == cap) {
      cap *= 2;
      int64_t *t = realloc(*out, sizeof **out * cap);
      if (!t) return -1;
      *out = t;
    }
    (*out)[(*n)++] = v;
    p = end;
    while (*p == ' ') p++;
    if (*p == ',') {
      p++;
      if (!*p) return -1;
    } else if (*p) {
      return -1;
    }
  }
  return 0;
}

static int parse_num(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
  *out = v;
  return 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- output ------------------------------------------------------------------ */

static void print_token(const morrt_tokenizer *tok, int32_t id, FILE *f) {
  if (tok) {
    const char *s = morrt_tokenizer_token(tok, id);
    if (s) {
      fwrite(s, 1, morrt_tokenizer_token_len(tok, id), f);
      return;
    }
  }
  fprintf(f, tok ? "<%d>" : "%d ", id);
}

static const char *depth_color(int d) {
  static const char *c[] = {"\033[90m", "\033[34m", "\033[32m", "\033[33m", "\033[31m", "\033[35m", "\033[36m"};
  return d < 0 ? "\033[0m" : c[d % 7];
}

static void show_routing(const morrt_tokenizer *tok, const int32_t *ids, const int32_t *dep, size_t n, size_t n_prompt,
                         int max_depth) {
  int tty = isatty(STDOUT_FILENO);
  for (size_t i = 0; i < n; i++) {
    if (i == n_prompt && n_prompt) fputs(tty ? "\033[1m|\033[0m" : " || ", stdout);
    if (tty) {
      /* no escape codes inside a UTF-8 character split over tokens */
      const char *t = tok ? morrt_tokenizer_token(tok, ids[i]) : NULL;
      if (!t || ((unsigned char)t[0] & 0xc0) != 0x80) fputs(depth_color(dep[i]), stdout);
      if (!tok) printf("%d ", ids[i]);
      else print_token(tok, ids[i], stdout);
    } else {
      if (!tok) printf("%d", ids[i]);
      else print_token(tok, ids[i], stdout);
      if (dep[i] >= 0) printf("[%d]%s", dep[i], tok ? "" : " ");
      else printf("[?]%s", tok ? "" : " ");
    }
  }
  if (tty) fputs("\033[0m", stdout);
  putchar('\n');
  if (tty) {
    fputs("recursions:", stdout);
    for (int d = 0; d <= max_depth; d++) printf(" %s%d\033[0m", depth_color(d), d);
    fputs("  (| separates prompt and output)\n", stdout);
  }
}

/* ---- main ---------------------------------------------------------------------- */

/* The storage format of the model's matmul weights (morc build
 * --weights-dtype), and the bytes all its weights take in memory. */
static const char *format_name(int64_t f) {
  return f == MORRT_FMT_BF16 ? "bf16" : f == MORRT_FMT_F16 ? "f16" : f == MORRT_FMT_Q8 ? "q8" : "f32";
}

static int64_t weight_bytes(const morrt_desc *d, int64_t *fmt) {
  int64_t total = 0;
  *fmt = MORRT_FMT_F32;
  for (int64_t i = 0; i < d->n_weights; i++) {
    const morrt_weight_desc *w = &d->weights[i];
    int64_t n = 1;
    for (int64_t k = 0; k < w->rank; k++) n *= w->shape[k];
    if (w->format != MORRT_FMT_F32) *fmt = w->format;
    if (w->format == MORRT_FMT_Q8 && w->rank == 2) {
      int64_t S = (w->shape[1] + MORRT_Q8_GROUP - 1) / MORRT_Q8_GROUP * MORRT_Q8_GROUP;
      total += w->shape[0] * S + 4 * w->shape[0] * (S / MORRT_Q8_GROUP);
    } else {
      total += n * (w->format == MORRT_FMT_F32 ? 4 : 2);
    }
  }
  return total;
}

int main(int argc, char **argv) {
  const morrt_desc *d = &morrt_main_model;
  prog = argc > 0 && argv[0] ? strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0] : "model";
  const char *prompt = NULL, *tokens_s = NULL, *chunks_s = NULL, *logits_path = NULL, *depths_path = NULL;
  const char *weights = NULL, *tok_path = NULL;
  double n_gen = d->whole_sequence ? 0 : 32, temp = 0.8, top_k = 40, top_p = 0.95, threads = 0, seed_v = -1;
  int stats = 0, routing = 0, info = 0, pin = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], **sv = NULL, *val = NULL;
    double *nv = NULL, lo = 0, hi = 0;
    char opt[32];
    a = morrt_opt_name(a, opt, sizeof opt, &val);
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--prompt")) sv = &prompt;
    else if (!strcmp(a, "--tokens")) sv = &tokens_s;
    else if (!strcmp(a, "--chunks")) sv = &chunks_s;
    else if (!strcmp(a, "--logits")) sv = &logits_path;
    else if (!strcmp(a, "--depths")) sv = &depths_path;
    else if (!strcmp(a, "--weights")) sv = &weights;
    else if (!strcmp(a, "--tokenizer")) sv = &tok_path;
    else if (!strcmp(a, "-n")) nv = &n_gen, lo = 0, hi = 1e9;
    else if (!strcmp(a, "--temp")) nv = &temp, lo = 0, hi = 1e6;
    else if (!strcmp(a, "--top-k")) nv = &top_k, lo = 0, hi = 1e9;
    else if (!strcmp(a, "--top-p")) nv = &top_p, lo = 0, hi = 1;
    else if (!strcmp(a, "--threads")) nv = &threads, lo = 0, hi = 4096;
    else if (!strcmp(a, "--seed")) nv = &seed_v, lo = 0, hi = 18446744073709551615.0;
    else if (!strcmp(a, "--stats")) stats = 1;
    else if (!strcmp(a, "--show-routing")) routing = 1;
    else if (!strcmp(a, "--info")) info = 1;
    else if (!strcmp(a, "--no-pin")) pin = 0;
    else return die_usage("unknown option '%s'", argv[i]);
    if (!sv && !nv && val) return die_usage("%s takes no value", a);
    if (sv || nv) {
      if (!val && ++i >= argc) return die_usage("%s needs a value", a);
      if (!val) val = argv[i];
      if (sv) *sv = val;
      else if (parse_num(val, lo, hi, nv)) {
        fprintf(stderr, "%s: error: %s: '%s' is not a number in [%g, %g]\n(see '%s --help')\n", prog, a, val, lo, hi, prog);
        return 2;
      }
    }
  }
  int64_t wfmt = 0, wbytes = weight_bytes(d, &wfmt);
  if (info) {
    printf("model %s\ntarget %s\ncpu %s\nvocab %lld\nmax positions %lld\ntokens per call %lld\nrecursions %lld\n"
           "weights %s\nweight format %s (matmul weights; %.1f MB in memory)\narena %lld bytes\nKV caches %lld\n",
           d->name, d->target, d->cpu, (long long)d->vocab_size, (long long)d->max_pos, (long long)d->max_tokens,
           (long long)d->num_recursions, d->weights_blob ? "embedded" : d->weights_file ? d->weights_file : "none",
           format_name(wfmt), (double)wbytes / 1e6, (long long)d->arena_bytes, (long long)d->n_kv);
    return 0;
  }
  if (!prompt == !tokens_s) return die_usage("%s", prompt ? "give --prompt or --tokens, not both" : "missing --prompt TEXT or --tokens IDS");
  if (n_gen != floor(n_gen) || top_k != floor(top_k) || threads != floor(threads) || (seed_v >= 0 && seed_v != floor(seed_v)))
    return die_usage("%s", "-n, --top-k, --threads and --seed take integers");
  if (d->whole_sequence && n_gen > 0)
    return fail("this model uses top_k routing, which scores whole sequences only: it cannot generate token by "
                "token (use -n 0)");

  int rc = 1;
  char err[1024];
  morrt_model *m = NULL;
  morrt_seq *s = NULL;
  morrt_tokenizer *tok = NULL;
  int64_t *ids64 = NULL, *chunks = NULL;
  int32_t *ids = NULL, *dep = NULL;
  float *logits = NULL;
  size_t nt = 0, nc = 0;

  morrt_options opt = {.threads = (int)threads, .weights = weights, .pin = pin};
  m = morrt_model_open(d, &opt, err, sizeof err);
  if (!m) {
    fail(err);
    goto out;
  }
  if (tok_path) {
    tok = morrt_tokenizer_load(tok_path, err, sizeof err);
    if (!tok) {
      fail(err);
      goto out;
    }
  } else {
    tok = morrt_model_tokenizer(m, err, sizeof err);
    if (!tok && err[0]) {
      fail(err);
      goto out;
    }
  }
  if (prompt) {
    if (!tok) {
      fail("this model has no tokenizer: give token ids with --tokens (or a tokenizer.json with --tokenizer)");
      goto out;
    }
    int32_t *enc = NULL;
    if (morrt_tokenizer_encode(tok, prompt, strlen(prompt), &enc, &nt) != 0) {
      fail("out of memory encoding the prompt");
      rc = 3;
      goto out;
    }
    ids64 = malloc(sizeof *ids64 * (nt + 1));
    for (size_t i = 0; i < nt; i++) ids64[i] = enc[i];
    free(enc);
    if (nt == 0) {
      fail("the prompt encodes to no tokens");
      goto out;
    }
  } else if (parse_ids(tokens_s, &ids64, &nt) != 0 || nt == 0) {
    rc = die_usage("--tokens: '%s' is not a comma-separated list of token ids", tokens_s);
    goto out;
  }
  for (size_t i = 0; i < nt; i++)
    if (ids64[i] >= d->vocab_size) {
      snprintf(err, sizeof err, "token %zu: id %lld out of range [0, %lld)", i, (long long)ids64[i],
               (long long)d->vocab_size);
      fail(err);
      goto out;
    }
  if ((int64_t)nt > d->max_pos) {
    snprintf(err, sizeof err, "the prompt has %zu tokens, past the model's context of %lld positions", nt,
             (long long)d->max_pos);
    fail(err);
    goto out;
  }
  if (chunks_s) {
    int64_t sum = 0;
    if (parse_ids(chunks_s, &chunks, &nc) != 0 || nc == 0) {
      rc = die_usage("--chunks: '%s' is not a comma-separated list of sizes", chunks_s);
      goto out;
    }
    for (size_t i = 0; i < nc; i++) {
      if (chunks[i] < 1) {
        rc = die_usage("--chunks: '%s': every size must be at least 1", chunks_s);
        goto out;
      }
      sum += chunks[i];
    }
    if (sum != (int64_t)nt) {
      snprintf(err, sizeof err, "--chunks: the sizes add up to %lld, but the prompt has %zu tokens", (long long)sum, nt);
      rc = die_usage("%s", err);
      goto out;
    }
  } else {
    chunks = malloc(sizeof *chunks);
    chunks[0] = (int64_t)nt;
    nc = 1;
  }
  /* every generated token but the last is fed back, so at most max_pos - nt + 1 of them */
  int capped = n_gen > (double)(d->max_pos - (int64_t)nt + 1);
  if (capped) n_gen = (double)(d->max_pos - (int64_t)nt + 1);
  size_t total = nt + (size_t)n_gen + 1;
  int64_t V = d->vocab_size;
  ids = malloc(sizeof *ids * total);
  dep = malloc(sizeof *dep * total);
  logits = malloc(sizeof *logits * nt * (size_t)V);
  s = morrt_seq_new(m);
  if (!ids || !dep || !logits || !s) {
    fail("out of memory");
    rc = 3;
    goto out;
  }
  for (size_t i = 0; i < nt; i++) ids[i] = (int32_t)ids64[i];
  for (size_t i = 0; i < total; i++) dep[i] = -1;

  /* prompt */
  double t0 = now();
  size_t off = 0;
  for (size_t c = 0; c < nc; c++) {
    if (morrt_forward(m, s, ids + off, chunks[c], logits + off * (size_t)V, dep + off, err, sizeof err)) {
      fail(err);
      goto out;
    }
    off += (size_t)chunks[c];
  }
  double t_prompt = now() - t0;
  if (logits_path && morrt_npy_write_f32(logits_path, logits, (int64_t)nt, V, err, sizeof err)) {
    fail(err);
    goto out;
  }
  if (depths_path) {
    FILE *f = fopen(depths_path, "w");
    if (!f) {
      snprintf(err, sizeof err, "%s: %s", depths_path, strerror(errno));
      fail(err);
      goto out;
    }
    for (size_t i = 0; i < nt; i++) fprintf(f, "%d\n", dep[i]);
    if (fclose(f) != 0) {
      snprintf(err, sizeof err, "%s: write failed", depths_path);
      fail(err);
      goto out;
    }
  }

  /* generation */
  uint64_t seed = seed_v >= 0 ? (uint64_t)seed_v : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  uint64_t rng = seed;
  morrt_sampler_cfg sc = {.temperature = (float)temp, .top_k = (int32_t)top_k, .top_p = (float)top_p};
  float *row = logits + (nt - 1) * (size_t)V;
  size_t n_out = 0;
  int stopped = 0;
  double t1 = now();
  for (size_t i = 0; i < (size_t)n_gen; i++) {
    int32_t next = morrt_sample(row, (int32_t)V, &sc, &rng);
    if (next < 0) {
      fail("out of memory sampling");
      rc = 3;
      goto out;
    }
    ids[nt + n_out++] = next;
    if (!routing) {
      print_token(tok, next, stdout);
      fflush(stdout);
    }
    int last = i + 1 == (size_t)n_gen;
    if (last && !routing) break;
    if (morrt_seq_len(s) >= d->max_pos) {
      stopped = 1;
      break;
    }
    if (morrt_forward(m, s, &ids[nt + n_out - 1], 1, row, &dep[nt + n_out - 1], err, sizeof err)) {
      fail(err);
      goto out;
    }
  }
  double t_gen = now() - t1;
  if (routing) show_routing(tok, ids, dep, nt + n_out, nt, (int)d->num_recursions);
  else if (n_out) putchar('\n');
  if (stopped || capped) fprintf(stderr, "%s: note: generation stopped at the end of the context (%lld positions)\n", prog,
                       (long long)d->max_pos);
  if (stats) {
    const int64_t *dc = morrt_seq_depth_counts(s);
    int64_t fed = morrt_seq_len(s) - (int64_t)nt;
    fprintf(stderr, "prompt:     %zu tokens in %.4f s (%.1f tokens/s)\n", nt, t_prompt, t_prompt > 0 ? nt / t_prompt : 0);
    fprintf(stderr, "generation: %zu tokens in %.4f s (%.1f tokens/s)\n", n_out, t_gen,
            t_gen > 0 ? (double)n_out / t_gen : 0);
    fprintf(stderr, "depths:     of %lld tokens run, reached depth", (long long)(nt + (size_t)(fed > 0 ? fed : 0)));
    for (int64_t r = 1; r <= d->num_recursions; r++) {
      int64_t k = 0;
      for (int64_t q = r; q <= d->num_recursions; q++) k += dc[q];
      fprintf(stderr, " %lld: %lld%s", (long long)r, (long long)k, r < d->num_recursions ? "," : "");
    }
    fprintf(stderr, " (ran exactly");
    for (int64_t r = 0; r <= d->num_recursions; r++) fprintf(stderr, " %lld: %lld", (long long)r, (long long)dc[r]);
    fprintf(stderr, ")\n");
    fprintf(stderr, "KV cache:   %lld bytes in use (%lld caches)\n", (long long)morrt_seq_kv_bytes(s), (long long)d->n_kv);
    fprintf(stderr, "threads:    %d%s, seed %llu, weights %s (%s, %.1f MB)\n", morrt_model_threads(m),
            morrt_model_pinned(m) ? " (pinned)" : "", (unsigned long long)seed, morrt_model_weights_path(m), format_name(wfmt), (double)wbytes / 1e6);
  }
  rc = 0;
out:
  fflush(stdout);
  free(ids64);
  free(chunks);
  free(ids);
  free(dep);
  free(logits);
  morrt_seq_free(s);
  morrt_tokenizer_free(tok);
  morrt_model_free(m);
  return rc;
}
