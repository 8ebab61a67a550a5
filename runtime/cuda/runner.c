/* runner.c: main() of executables built with `morc build --target cuda`.
 * The program finds its launch plan, kernels and weights appended to its
 * own file (runtime/cuda_plan.h), and runs them on the GPU through the
 * driver API, loaded with dlopen: without a driver or a GPU it says "no
 * CUDA driver or GPU found" and exits 1. The command line follows the CPU
 * executables' (--tokens, --prompt, --chunks, -n, --logits, --depths,
 * --stats) and adds --bench-prefill / --bench-decode.
 * Exit codes: 0 success, 1 bad input or no GPU, 2 bad usage, 3 CUDA error. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cliopt.h"
#include "runtime/cuda_plan.h"
#include "runtime/cuda_rt.h"
#include "runtime/npy.h"
#include "runtime/safetensors.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"

static const char *prog = "model";

static void usage(FILE *f) {
  fprintf(f,
          "usage: %s [--tokens IDS | --prompt TEXT] [options]\n"
          "\n"
          "Run the model this program was compiled from on an NVIDIA GPU (morc build --target cuda).\n"
          "\n"
          "options:\n"
          "  --tokens IDS        prompt as comma-separated token ids\n"
          "  --prompt TEXT       prompt as text (needs the tokenizer embedded at build time)\n"
          "  --chunks SIZES      feed the prompt in forward calls of these sizes (e.g. 4,1,1)\n"
          "  -n N                generate N tokens after the prompt (default 0)\n"
          "  --temp T            sampling temperature (default 0: greedy)\n"
          "  --top-k K           keep the K most likely tokens\n"
          "  --top-p P           nucleus sampling\n"
          "  --seed S            random seed (default 1)\n"
          "  --logits FILE.npy   float32 logits of the prompt tokens [T, V]\n"
          "  --depths FILE       per prompt token, the number of recursions it ran\n"
          "  --stats             prompt and generation tokens/s, tokens that reached each depth\n"
          "  --bench-prefill N   time one forward call of N tokens (ids 1..N), best of --bench-reps\n"
          "  --bench-decode N    then time N one-token decode steps\n"
          "  --bench-reps R      repetitions of the prefill timing (default 5)\n"
          "  --bench-bandwidth   measure device memory bandwidth (a 1 GiB device-to-device copy)\n"
          "  --weights FILE      the model's weights (.safetensors or .safetensors.index.json),\n"
          "                      converted to the formats this build uses; needed when it was built\n"
          "                      with --no-embed-weights, else they replace the embedded ones\n"
          "  --device N          GPU ordinal (default 0)\n"
          "  --no-graph          launch every kernel of a decode step (no CUDA graph)\n"
          "  --no-pdl            no programmatic dependent launch (sm_90: by default each kernel is launched\n"
          "                      while the one before it runs, and waits for it on the GPU)\n"
          "  --sync-steps        wait for every kernel and name the one that failed (debugging; slow)\n"
          "  --dump-steps FILE   after every kernel, write the device state to FILE (debugging: compare a\n"
          "                      GPU's dump with the CPU emulation's with stepcmp; implies --sync-steps)\n"
          "  --info              describe this build (model, arch, kernels, memory) and exit\n"
          "  -h, --help          show this help\n"
          "\n"
          "Exit codes: 0 success, 1 bad input or no GPU, 2 bad usage, 3 CUDA error.\n",
          prog);
}

static int die_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "%s: error: ", prog);
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(see '%s --help')\n", prog);
  return 2;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* "1,2,3" -> ids; -1 on a malformed list */
static int parse_list(const char *s, int64_t **out, size_t *n) {
  size_t cap = 16, k = 0;
  int64_t *v = malloc(cap * sizeof *v);
  const char *p = s;
  while (*p) {
    while (*p == ' ') p++;
    if (*p < '0' || *p > '9') {
      free(v);
      return -1;
    }
    int64_t x = 0;
    while (*p >= '0' && *p <= '9') {
      x = x * 10 + (*p++ - '0');
      if (x > (int64_t)1 << 40) {
        free(v);
        return -1;
      }
    }
    while (*p == ' ') p++;
    if (k == cap) v = realloc(v, (cap *= 2) * sizeof *v);
    v[k++] = x;
    if (*p == ',') {
      p++;
      if (!*p) {
        free(v);
        return -1;
      }
    } else if (*p) {
      free(v);
      return -1;
    }
  }
  *out = v;
  *n = k;
  return 0;
}

/* The payload appended to this program's file. */
typedef struct payload {
  void *map;
  size_t size;
  morcu_plan *plan;
  const void *weights;
} payload;

static uint64_t le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static int load_payload(payload *pl, char *err, size_t n) {
  const char *self = "/proc/self/exe";
  int fd = open(self, O_RDONLY);
  if (fd < 0) return snprintf(err, n, "cannot open %s: %s", self, strerror(errno)), -1;
  struct stat sb;
  if (fstat(fd, &sb) != 0 || sb.st_size < MORCU_TRAILER_SIZE) {
    close(fd);
    return snprintf(err, n, "this program carries no model (was it built with morc build --target cuda?)"), -1;
  }
  pl->size = (size_t)sb.st_size;
  pl->map = mmap(NULL, pl->size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (pl->map == MAP_FAILED) return snprintf(err, n, "cannot map %s: %s", self, strerror(errno)), -1;
  const unsigned char *base = pl->map, *tr = base + pl->size - MORCU_TRAILER_SIZE;
  if (memcmp(tr, MORCU_TRAILER_MAGIC, 8) != 0)
    return snprintf(err, n, "this program carries no model (was it built with morc build --target cuda?)"), -1;
  uint64_t plan_off = le64(tr + 8), plan_len = le64(tr + 16), w_off = le64(tr + 24);
  uint64_t end = pl->size - MORCU_TRAILER_SIZE;
  if (plan_off > end || plan_len > end - plan_off || w_off > end)
    return snprintf(err, n, "the model appended to this program is damaged (bad trailer)"), -1;
  pl->plan = morcu_plan_read(base + plan_off, (size_t)plan_len, err, n);
  if (!pl->plan) return -1;
  if (w_off == 0) return 0; /* built with --no-embed-weights */
  if ((uint64_t)pl->plan->weights_bytes > end - w_off)
    return snprintf(err, n, "the model appended to this program is damaged (weights cut short)"), -1;
  pl->weights = base + w_off;
  return 0;
}

static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, u;
  if (e == 0) {
    if (m == 0) u = sign;
    else { /* subnormal */
      e = 127 - 15 + 1;
      while (!(m & 1024)) m <<= 1, e--;
      u = sign | e << 23 | (m & 1023) << 13;
    }
  } else if (e == 31) {
    u = sign | 0x7f800000u | m << 13;
  } else {
    u = sign | (e - 15 + 127) << 23 | m << 13;
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint16_t f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* The plan's weights from a safetensors file, in their device formats, into
 * a new buffer of plan->weights_bytes. */
static void *weights_from_file(const morcu_plan *p, const char *path, char *err, size_t n) {
  morrt_st *st = morrt_st_open(path, err, n);
  if (!st) return NULL;
  unsigned char *buf = calloc(1, (size_t)p->weights_bytes + 1);
  if (!buf) {
    snprintf(err, n, "out of memory for %.1f MiB of weights", p->weights_bytes / 1048576.0);
    morrt_st_free(st);
    return NULL;
  }
  for (int64_t i = 0; i < p->n_weights; i++) {
    const morcu_weight *w = &p->weights[i];
    const morrt_st_tensor *t = morrt_st_find(st, w->name);
    int esz = w->dtype == 2 ? 2 : 4;
    int64_t numel = 1;
    if (t)
      for (int d = 0; d < t->rank; d++) numel *= t->shape[d];
    if (!t || t->dtype < 0 || numel * esz != (int64_t)w->bytes) {
      snprintf(err, n, "%s: tensor '%s' %s (this program needs %llu bytes of it as %s)", path, w->name,
               t ? "has another shape or dtype" : "is missing", (unsigned long long)w->bytes, esz == 2 ? "bf16" : "f32");
      free(buf);
      morrt_st_free(st);
      return NULL;
    }
    unsigned char *dst = buf + w->offset;
    for (int64_t k = 0; k < numel; k++) {
      float v;
      if (t->dtype == 0) memcpy(&v, (const char *)t->data + 4 * k, 4);
      else {
        uint16_t h;
        memcpy(&h, (const char *)t->data + 2 * k, 2);
        if (t->dtype == 2 && esz == 2) {
          memcpy(dst + 2 * k, &h, 2);
          continue;
        }
        if (t->dtype == 2) {
          uint32_t u = (uint32_t)h << 16;
          memcpy(&v, &u, 4);
        } else {
          v = f16_to_f32(h);
        }
      }
      if (esz == 4) memcpy(dst + 4 * k, &v, 4);
      else {
        uint16_t b = f32_to_bf16(v);
        memcpy(dst + 2 * k, &b, 2);
      }
    }
  }
  morrt_st_free(st);
  return buf;
}

static void print_info(const morcu_plan *p) {
  printf("model:        %s\n", p->name);
  printf("arch:         %s (cubin %llu bytes, PTX %zu bytes)\n", p->arch, (unsigned long long)p->cubin_size,
         strlen(p->ptx));
  printf("vocab:        %lld, hidden %lld, context %lld, tokens per call <= %lld\n", (long long)p->vocab,
         (long long)p->hidden, (long long)p->max_pos, (long long)p->max_tokens);
  printf("recursions:   %lld, routing %s%s\n", (long long)p->n_r,
         p->routing == 1 ? "expert_choice" : p->routing == 2 ? "token_choice" : "none",
         p->whole_sequence ? " (top_k: whole sequences only)" : "");
  printf("kernels:      %lld instances, %lld launches per forward call\n", (long long)p->n_kernels, (long long)p->n_steps);
  int64_t kv = 0;
  for (int64_t i = 0; i < p->n_kv; i++) kv += p->kv[i].capacity * (p->kv[i].width * 8 + 4);
  printf("memory:       weights %.1f MiB, arena %.1f MiB, KV %.1f MiB per sequence (%lld stores)\n",
         p->weights_bytes / 1048576.0, p->arena_bytes / 1048576.0, kv / 1048576.0, (long long)p->n_kv);
  printf("tokenizer:    %s\n", p->tokenizer_json ? "embedded" : "none");
}

int main(int argc, char **argv) {
  const char *slash = strrchr(argv[0], '/');
  prog = slash ? slash + 1 : argv[0];
  const char *tokens_s = NULL, *prompt = NULL, *chunks_s = NULL, *logits_path = NULL, *depths_path = NULL,
             *weights_path = NULL, *dump_path = NULL;
  char dump_tmp[4096] = "";
  FILE *dumpf = NULL;
  long long n_gen = 0, bench_prefill = 0, bench_decode = 0, bench_reps = 5, device = 0, top_k = 0;
  unsigned long long seed = 1;
  double temp = 0, top_p = 0;
  int stats = 0, graphs = 1, info = 0, bench_bw = 0, sync_steps = 0, pdl = 1;
  const char *seed_s = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val = NULL;
    const char **sslot = NULL;
    long long *islot = NULL;
    double *dslot = NULL;
    char opt[32];
    a = morrt_opt_name(a, opt, sizeof opt, &val);
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--tokens")) sslot = &tokens_s;
    else if (!strcmp(a, "--prompt")) sslot = &prompt;
    else if (!strcmp(a, "--chunks")) sslot = &chunks_s;
    else if (!strcmp(a, "--logits")) sslot = &logits_path;
    else if (!strcmp(a, "--depths")) sslot = &depths_path;
    else if (!strcmp(a, "--weights")) sslot = &weights_path;
    else if (!strcmp(a, "--dump-steps")) sslot = &dump_path;
    else if (!strcmp(a, "-n")) islot = &n_gen;
    else if (!strcmp(a, "--bench-prefill")) islot = &bench_prefill;
    else if (!strcmp(a, "--bench-decode")) islot = &bench_decode;
    else if (!strcmp(a, "--bench-reps")) islot = &bench_reps;
    else if (!strcmp(a, "--device")) islot = &device;
    else if (!strcmp(a, "--top-k")) islot = &top_k;
    else if (!strcmp(a, "--temp")) dslot = &temp;
    else if (!strcmp(a, "--top-p")) dslot = &top_p;
    else if (!strcmp(a, "--seed")) sslot = &seed_s;
    else if (!strcmp(a, "--stats") || !strcmp(a, "--no-graph") || !strcmp(a, "--info") ||
             !strcmp(a, "--bench-bandwidth") || !strcmp(a, "--sync-steps") || !strcmp(a, "--no-pdl")) {
      if (val) return die_usage("%s takes no value", a);
      if (!strcmp(a, "--stats")) stats = 1;
      else if (!strcmp(a, "--no-graph")) graphs = 0;
      else if (!strcmp(a, "--info")) info = 1;
      else if (!strcmp(a, "--sync-steps")) sync_steps = 1;
      else if (!strcmp(a, "--no-pdl")) pdl = 0;
      else bench_bw = 1;
      continue;
    } else return die_usage("unknown argument '%s'", argv[i]);
    if (!val && ++i >= argc) return die_usage("%s needs a value", a);
    if (!val) val = argv[i];
    if (sslot) *sslot = val;
    if (islot) {
      char *end;
      errno = 0;
      *islot = strtoll(val, &end, 10);
      if (*end || !*val || errno || *islot < 0) return die_usage("%s: expected a non-negative integer", a);
    }
    if (dslot) {
      char *end;
      *dslot = strtod(val, &end);
      if (*end || !*val) return die_usage("%s: expected a number", a);
    }
  }
  if (seed_s) {
    char *end;
    errno = 0;
    seed = strtoull(seed_s, &end, 10);
    if (*end || !*seed_s || errno || seed_s[0] == '-') return die_usage("--seed %s: expected a non-negative integer", seed_s);
  }
  if (tokens_s && prompt) return die_usage("%s", "give --tokens or --prompt, not both");
  if (!tokens_s && !prompt && !bench_prefill && !info && !bench_bw)
    return die_usage("%s", "nothing to do: give --tokens, --prompt or --bench-prefill");
  if (bench_reps < 1) bench_reps = 1;

  char err[1024];
  payload pl = {0};
  if (load_payload(&pl, err, sizeof err)) {
    fprintf(stderr, "%s: error: %s\n", prog, err);
    return 1;
  }
  const morcu_plan *p = pl.plan;
  if (info) {
    print_info(p);
    morcu_plan_free(pl.plan);
    if (pl.map && pl.map != MAP_FAILED) munmap(pl.map, pl.size);
    return 0;
  }
  int rc = 1;
  int64_t *toks64 = NULL, *chunks = NULL;
  int32_t *ids = NULL, *depths = NULL, *gen = NULL;
  float *logits = NULL, *last = NULL;
  size_t nt = 0, nc = 0;
  morrt_tokenizer *tok = NULL;
  morrt_cuda *c = NULL;
  morrt_cuda_seq *s = NULL;
  if (prompt) {
    if (!p->tokenizer_json) {
      fprintf(stderr, "%s: error: --prompt needs a tokenizer, and none was embedded; use --tokens\n", prog);
      goto out;
    }
    tok = morrt_tokenizer_load_mem(p->tokenizer_json, (size_t)p->tokenizer_size, "tokenizer.json", err, sizeof err);
    if (!tok) {
      fprintf(stderr, "%s: error: %s\n", prog, err);
      goto out;
    }
    int32_t *enc = NULL;
    if (morrt_tokenizer_encode(tok, prompt, strlen(prompt), &enc, &nt) != 0) {
      fprintf(stderr, "%s: error: out of memory\n", prog);
      goto out;
    }
    ids = enc;
  } else if (tokens_s) {
    if (parse_list(tokens_s, &toks64, &nt) || nt == 0) {
      rc = die_usage("--tokens %s: expected comma-separated non-negative integers", tokens_s);
      goto out;
    }
    ids = malloc(sizeof *ids * nt);
    for (size_t i = 0; i < nt; i++) {
      if (toks64[i] >= p->vocab) {
        fprintf(stderr, "%s: error: --tokens: item %zu: id %lld out of range [0, %lld)\n", prog, i + 1,
                (long long)toks64[i], (long long)p->vocab);
        goto out;
      }
      ids[i] = (int32_t)toks64[i];
    }
  }
  if (nt && (int64_t)(nt + (size_t)n_gen) > p->max_pos) {
    fprintf(stderr, "%s: error: %zu prompt tokens + %lld generated go past the context of %lld\n", prog, nt, n_gen,
            (long long)p->max_pos);
    goto out;
  }
  if (chunks_s) {
    if (parse_list(chunks_s, &chunks, &nc) || nc == 0) {
      rc = die_usage("--chunks %s: expected comma-separated sizes", chunks_s);
      goto out;
    }
    size_t sum = 0;
    for (size_t i = 0; i < nc; i++) {
      if (chunks[i] < 1) {
        rc = die_usage("--chunks %s: every size must be at least 1", chunks_s);
        goto out;
      }
      sum += (size_t)chunks[i];
    }
    if (sum != nt) {
      fprintf(stderr, "%s: error: --chunks adds up to %zu, but the prompt has %zu tokens\n", prog, sum, nt);
      rc = 2;
      goto out;
    }
  }
  if (bench_prefill > p->max_tokens || bench_prefill + bench_decode > p->max_pos) {
    fprintf(stderr, "%s: error: --bench-prefill %lld / --bench-decode %lld do not fit (tokens per call <= %lld, "
                    "context %lld)\n",
            prog, bench_prefill, bench_decode, (long long)p->max_tokens, (long long)p->max_pos);
    goto out;
  }

  void *wfile = NULL;
  if (weights_path) {
    wfile = weights_from_file(p, weights_path, err, sizeof err);
    if (!wfile) {
      fprintf(stderr, "%s: error: %s\n", prog, err);
      goto out;
    }
  } else if (!pl.weights && p->weights_bytes) {
    fprintf(stderr, "%s: error: this program was built without its weights (--no-embed-weights): pass --weights "
                    "FILE.safetensors\n",
            prog);
    goto out;
  }
  /* the runtime drops the graph under --sync-steps, and morrt_cuda_set_dump implies it */
  int orc = morrt_cuda_open(p, wfile ? wfile : pl.weights, (int)device,
                            (graphs ? MORRT_CUDA_GRAPHS : 0) | (sync_steps ? MORRT_CUDA_SYNC_STEPS : 0) |
                                (pdl ? MORRT_CUDA_PDL : 0),
                            &c, err, sizeof err);
  free(wfile);
  if (orc != MORRT_CUDA_OK) {
    fprintf(stderr, "%s: error: %s\n", prog, err);
    rc = orc == MORRT_CUDA_NO_GPU ? 1 : 3;
    goto out;
  }
  if (dump_path) { /* written beside, renamed when the run succeeds */
    snprintf(dump_tmp, sizeof dump_tmp, "%s.part", dump_path);
    dumpf = fopen(dump_tmp, "wb");
    if (!dumpf) {
      fprintf(stderr, "%s: error: %s: %s\n", prog, dump_tmp, strerror(errno));
      dump_tmp[0] = 0;
      goto out;
    }
    morrt_cuda_set_dump(c, dumpf);
  }
  morrt_cuda_dev dv;
  morrt_cuda_device(c, &dv);
  if (stats || bench_prefill)
    fprintf(stderr, "%s: %s (sm_%d%d, %d SMs, %.0f GB/s peak), kernels from the %s, %.1f MiB on the device\n", prog,
            dv.name, dv.cc_major, dv.cc_minor, dv.sms, dv.mem_gbps, dv.loaded_cubin ? "cubin" : "PTX (JIT)",
            dv.device_bytes / 1048576.0);
  int64_t V = p->vocab;
  if (bench_bw) {
    double g = morrt_cuda_copy_gbps(c, (size_t)1 << 30, 20, err, sizeof err);
    if (g < 0) {
      fprintf(stderr, "%s: error: %s\n", prog, err);
      rc = 3;
      goto out;
    }
    printf("bandwidth: %.1f GB/s measured (device-to-device copy, read + write), %.1f GB/s peak from the memory "
           "clock and bus width\n",
           g, dv.mem_gbps);
  }
  if (nt) {
    s = morrt_cuda_seq_new(c, err, sizeof err);
    if (!s) {
      fprintf(stderr, "%s: error: %s\n", prog, err);
      rc = 3;
      goto out;
    }
    logits = logits_path ? malloc(sizeof(float) * nt * (size_t)V) : NULL;
    last = malloc(sizeof(float) * (size_t)V);
    depths = malloc(sizeof(int32_t) * nt);
    double t0 = now_s();
    size_t off = 0;
    for (size_t k = 0; k < (nc ? nc : 1); k++) {
      size_t len = nc ? (size_t)chunks[k] : nt;
      while (len > 0) {
        size_t n = len > (size_t)p->max_tokens ? (size_t)p->max_tokens : len;
        int final = off + n == nt;
        int rr = logits ? morrt_cuda_forward(c, s, ids + off, (int64_t)n, logits + off * (size_t)V, 0, depths + off,
                                             err, sizeof err)
                        : morrt_cuda_forward(c, s, ids + off, (int64_t)n, final ? last : NULL, 1, depths + off, err,
                                             sizeof err);
        if (rr) {
          fprintf(stderr, "%s: error: %s\n", prog, err);
          rc = rr == 1 ? 1 : 3;
          goto out;
        }
        off += n;
        len -= n;
      }
    }
    double t1 = now_s();
    if (logits) memcpy(last, logits + (nt - 1) * (size_t)V, sizeof(float) * (size_t)V);
    if (logits_path && morrt_npy_write_f32(logits_path, logits, (int64_t)nt, V, err, sizeof err)) {
      fprintf(stderr, "%s: error: %s\n", prog, err);
      goto out;
    }
    if (depths_path) {
      FILE *f = fopen(depths_path, "w");
      if (!f) {
        fprintf(stderr, "%s: error: %s: %s\n", prog, depths_path, strerror(errno));
        goto out;
      }
      for (size_t i = 0; i < nt; i++) fprintf(f, "%d\n", depths[i]);
      if (fclose(f)) {
        fprintf(stderr, "%s: error: %s: %s\n", prog, depths_path, strerror(errno));
        goto out;
      }
    }
    /* generation: needs the last prompt row's logits */
    double t2 = now_s(), t3 = t2;
    if (n_gen) {
      morrt_sampler_cfg sc = {(float)temp, (int32_t)top_k, (float)top_p};
      uint64_t rng = seed;
      gen = malloc(sizeof(int32_t) * (size_t)n_gen);
      t2 = now_s();
      for (long long g = 0; g < n_gen; g++) {
        int32_t next = morrt_sample(last, (int32_t)V, &sc, &rng);
        gen[g] = next;
        if (tok) {
          const char *piece = morrt_tokenizer_token(tok, next);
          if (piece) fwrite(piece, 1, morrt_tokenizer_token_len(tok, next), stdout);
        } else {
          printf("%d ", next); /* as the CPU executables print ids */
        }
        fflush(stdout);
        if (g + 1 < n_gen && morrt_cuda_forward(c, s, &next, 1, last, 1, NULL, err, sizeof err)) {
          fprintf(stderr, "\n%s: error: %s\n", prog, err);
          rc = 3;
          goto out;
        }
      }
      t3 = now_s();
      printf("\n");
    }
    if (stats) {
      fprintf(stderr, "prompt:     %zu tokens in %.3f s (%.1f tokens/s)\n", nt, t1 - t0, nt / (t1 - t0));
      if (n_gen > 1)
        fprintf(stderr, "generation: %lld tokens in %.3f s (%.1f tokens/s)\n", n_gen - 1, t3 - t2,
                (n_gen - 1) / (t3 - t2));
      int64_t hist[65] = {0};
      for (size_t i = 0; i < nt; i++)
        if (depths[i] >= 0 && depths[i] <= 64) hist[depths[i]]++;
      fprintf(stderr, "depths:    ");
      for (int64_t d = 0; d <= p->n_r && d <= 64; d++) fprintf(stderr, " %lld:%lld", (long long)d, (long long)hist[d]);
      fprintf(stderr, " (prompt tokens by recursions run)\n");
      morrt_cuda_device(c, &dv); /* after the runs: a driver may have refused programmatic dependent launch */
      fprintf(stderr, "launches:    programmatic dependent launch %s\n", dv.pdl ? "on" : "off");
    }
  }
  if (bench_prefill) {
    int64_t N = bench_prefill;
    int32_t *bt = malloc(sizeof(int32_t) * (size_t)(N + 1));
    for (int64_t i = 0; i < N; i++) bt[i] = (int32_t)((i * 7919 + 1) % V);
    int32_t *bd = malloc(sizeof(int32_t) * (size_t)(N + 1));
    float *bl = malloc(sizeof(float) * (size_t)V);
    double best = 1e30;
    for (long long r = 0; r <= bench_reps; r++) { /* the first run warms up */
      morrt_cuda_seq *bs = morrt_cuda_seq_new(c, err, sizeof err);
      if (!bs) break;
      double a = now_s();
      int fr = morrt_cuda_forward(c, bs, bt, N, bl, 1, bd, err, sizeof err);
      double b = now_s();
      morrt_cuda_seq_free(bs);
      if (fr) {
        fprintf(stderr, "%s: error: %s\n", prog, err);
        rc = 3;
        free(bt), free(bd), free(bl);
        goto out;
      }
      if (r && b - a < best) best = b - a;
    }
    int64_t hist[65] = {0};
    for (int64_t i = 0; i < N; i++)
      if (bd[i] >= 0 && bd[i] <= 64) hist[bd[i]]++;
    printf("prefill: %lld tokens in %.3f ms: %.1f tokens/s (depths", (long long)N, best * 1e3, N / best);
    for (int64_t d = 0; d <= p->n_r && d <= 64; d++) printf(" %lld:%lld", (long long)d, (long long)hist[d]);
    printf(")\n");
    if (bench_decode) {
      morrt_cuda_seq *bs = morrt_cuda_seq_new(c, err, sizeof err);
      int fr = !bs || morrt_cuda_forward(c, bs, bt, N, bl, 1, NULL, err, sizeof err);
      int64_t dh[65] = {0};
      double a = now_s();
      for (int64_t i = 0; !fr && i < bench_decode; i++) {
        int32_t next = morrt_argmax(bl, (int32_t)V), d1 = 0;
        fr = morrt_cuda_forward(c, bs, &next, 1, bl, 1, &d1, err, sizeof err);
        if (d1 >= 0 && d1 <= 64) dh[d1]++;
      }
      double b = now_s();
      morrt_cuda_seq_free(bs);
      if (fr) {
        fprintf(stderr, "%s: error: %s\n", prog, err);
        rc = 3;
        free(bt), free(bd), free(bl);
        goto out;
      }
      printf("decode: %lld tokens after a %lld-token prompt in %.3f ms: %.1f tokens/s, %.3f ms/token (depths",
             bench_decode, (long long)N, (b - a) * 1e3, bench_decode / (b - a), (b - a) * 1e3 / bench_decode);
      for (int64_t d = 0; d <= p->n_r && d <= 64; d++) printf(" %lld:%lld", (long long)d, (long long)dh[d]);
      printf(")\n");
    }
    free(bt);
    free(bd);
    free(bl);
    morrt_cuda_device(c, &dv);
    printf("launches: programmatic dependent launch %s\n", dv.pdl ? "on" : "off");
  }
  rc = 0;
  if (dumpf) {
    int bad = fclose(dumpf) != 0;
    dumpf = NULL;
    if (bad || rename(dump_tmp, dump_path)) {
      fprintf(stderr, "%s: error: %s: %s\n", prog, dump_path, strerror(errno));
      rc = 1;
    } else {
      dump_tmp[0] = 0;
    }
  }
out:
  if (dumpf) fclose(dumpf);
  if (dump_tmp[0]) remove(dump_tmp);
  morrt_cuda_seq_free(s);
  morrt_cuda_close(c);
  morrt_tokenizer_free(tok);
  morcu_plan_free(pl.plan);
  if (pl.map && pl.map != MAP_FAILED) munmap(pl.map, pl.size);
  free(toks64);
  free(chunks);
  free(ids);
  free(depths);
  free(gen);
  free(logits);
  free(last);
  return rc;
}
