/* pass_equal.c: every pass preserves semantics. For one example model it
 * runs the reference interpreter on the high-level IR and on the IR after
 * (a) each pass alone, (b) each prefix of the -O1 and -O2 pipelines, and
 * compares logits (f32 rounding: |a-b| <= 1e-4 * (1 + |a|)) and depths
 * (exactly), on the whole sequence and, for causal models, chunked. Every
 * stage is also printed, parsed, printed again (the text must not change)
 * and the parsed module is what gets run.
 *
 * usage: pass_equal MODEL_JSON GOLDEN_DIR CAUSAL(0|1) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ref/ref.h"
#include "frontend/lower.h"
#include "passes/passes.h"
#include "passes/pm.h"

static int failures;

static int64_t *read_ints(const char *dir, const char *name, int64_t *n) {
  char path[2048];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  mor_err e;
  size_t len;
  char *s = mor_read_file(path, &len, &e);
  *n = 0;
  if (!s) return NULL;
  int64_t *v = mor_xcalloc(len + 1, sizeof *v);
  for (char *p = s; *p;) {
    char *end;
    long long x = strtoll(p, &end, 10);
    if (end == p) {
      p++;
      continue;
    }
    v[(*n)++] = x;
    p = end;
  }
  free(s);
  return v;
}

typedef struct result {
  float *logits;
  int32_t *depths;
} result;

/* run m on tokens split into chunks; 0 on success */
static int run(const mor_module *m, const mor_weights *w, const int64_t *toks, int64_t nt, const int64_t *chunks,
               int64_t nc, int64_t V, result *out, mor_err *e) {
  mor_ref *r = mor_ref_new(m, w, e);
  if (!r) return -1;
  mor_ref_seq *s = mor_ref_seq_new(r);
  int32_t *ids = mor_xmalloc(sizeof *ids * (size_t)nt);
  for (int64_t i = 0; i < nt; i++) ids[i] = (int32_t)toks[i];
  out->logits = mor_xmalloc(sizeof(float) * (size_t)(nt * V));
  out->depths = mor_xmalloc(sizeof(int32_t) * (size_t)nt);
  int64_t off = 0;
  int rc = 0;
  for (int64_t c = 0; c < nc && !rc; c++) {
    rc = mor_ref_forward(r, s, ids + off, chunks[c], out->logits + off * V, out->depths + off, e);
    off += chunks[c];
  }
  free(ids);
  mor_ref_seq_free(s);
  mor_ref_free(r);
  return rc;
}

static void compare(const char *what, const result *a, const result *b, int64_t nt, int64_t V) {
  double worst = 0;
  for (int64_t i = 0; i < nt * V; i++) {
    double d = fabs((double)a->logits[i] - (double)b->logits[i]) / (1.0 + fabs((double)a->logits[i]));
    if (!(d <= worst)) worst = d; /* NaN counts as worst */
  }
  int dep_ok = memcmp(a->depths, b->depths, sizeof(int32_t) * (size_t)nt) == 0;
  if (!(worst <= 1e-4) || !dep_ok) {
    printf("FAIL %s: max relative logit difference %.3g, depths %s\n", what, worst, dep_ok ? "equal" : "DIFFER");
    failures++;
  } else {
    printf("ok   %s (max rel diff %.2g)\n", what, worst);
  }
}

static char *text_of(const mor_module *m) {
  mor_buf b = {0};
  mor_print_module(&b, m);
  mor_buf_putc(&b, 0);
  return b.data;
}

/* print -> parse -> print must be identical; returns the parsed module */
static mor_module *round_trip(const char *what, const mor_module *m) {
  char *t1 = text_of(m);
  mor_err e = {{0}};
  mor_module *p = mor_parse_module(t1, strlen(t1), what, &e);
  if (!p || mor_verify_module(p, &e)) {
    printf("FAIL %s: the printed IR does not parse/verify: %s\n", what, e.msg);
    failures++;
    free(t1);
    mor_module_free(p);
    return NULL;
  }
  char *t2 = text_of(p);
  if (strcmp(t1, t2)) {
    printf("FAIL %s: print(parse(print(m))) differs from print(m)\n", what);
    failures++;
  }
  free(t1);
  free(t2);
  return p;
}

static mor_module *fresh(const char *json, mor_config **cfg, mor_weights **w) {
  mor_err e = {{0}};
  mor_module *m = mor_load_model(json, cfg, w, &e);
  if (!m) {
    printf("FAIL: cannot load %s: %s\n", json, e.msg);
    exit(1);
  }
  return m;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: pass_equal MODEL_JSON GOLDEN_DIR CAUSAL\n");
    return 2;
  }
  const char *json = argv[1], *golden = argv[2];
  int causal = atoi(argv[3]);
  int64_t nt, nc;
  int64_t *toks = read_ints(golden, "tokens.txt", &nt);
  int64_t *chunks = causal ? read_ints(golden, "chunks.txt", &nc) : NULL;
  if (!toks || !nt) {
    fprintf(stderr, "no tokens in %s/tokens.txt\n", golden);
    return 2;
  }
  int64_t whole[1] = {nt};
  mor_config *cfg;
  mor_weights *w;
  mor_module *base = fresh(json, &cfg, &w);
  int64_t V = cfg->vocab_size;
  mor_err e = {{0}};
  result ref_whole, ref_chunk = {0};
  if (run(base, w, toks, nt, whole, 1, V, &ref_whole, &e)) {
    printf("FAIL high-level IR does not run: %s\n", e.msg);
    return 1;
  }
  if (causal && run(base, w, toks, nt, chunks, nc, V, &ref_chunk, &e)) {
    printf("FAIL high-level IR does not run chunked: %s\n", e.msg);
    return 1;
  }
  static const char *pipelines[] = {"specialize-depths",
                                    "fuse-shared-block",
                                    "plan-kv",
                                    "plan-memory",
                                    "dce",
                                    "cse",
                                    "specialize-depths,fuse-shared-block,plan-kv,plan-memory",
                                    "specialize-depths,plan-kv,plan-memory",
                                    "fuse-shared-block,specialize-depths,plan-kv",
                                    NULL};
  for (int p = 0; pipelines[p]; p++) {
    /* each prefix of the pipeline */
    char *spec = mor_xstrdup(pipelines[p]);
    int n_pass = 1;
    for (char *c = spec; *c; c++) n_pass += *c == ',';
    mor_config *c2;
    mor_weights *w2;
    mor_module *m = fresh(json, &c2, &w2);
    char *save = NULL, *tok = strtok_r(spec, ",", &save);
    char label[512] = "";
    for (int k = 0; tok; k++, tok = strtok_r(NULL, ",", &save)) {
      const mor_pass *ps = mor_pass_find(tok);
      int changed = 0;
      if (!ps || ps->run(m, &changed, &e) || mor_verify_module(m, &e)) {
        printf("FAIL %s: pass %s: %s\n", pipelines[p], tok, ps ? e.msg : "unknown pass");
        failures++;
        break;
      }
      size_t L = strlen(label);
      snprintf(label + L, sizeof label - L, "%s%s", k ? "," : "", tok);
      if (p < 6 && k > 0) continue;
      mor_module *parsed = round_trip(label, m);
      if (!parsed) break;
      result r = {0};
      char what[600];
      snprintf(what, sizeof what, "%s (whole)", label);
      if (run(parsed, w, toks, nt, whole, 1, V, &r, &e)) {
        printf("FAIL %s: %s\n", what, e.msg);
        failures++;
      } else {
        compare(what, &ref_whole, &r, nt, V);
      }
      free(r.logits);
      free(r.depths);
      if (causal) {
        snprintf(what, sizeof what, "%s (chunked)", label);
        if (run(parsed, w, toks, nt, chunks, nc, V, &r, &e)) {
          printf("FAIL %s: %s\n", what, e.msg);
          failures++;
        } else {
          compare(what, &ref_chunk, &r, nt, V);
        }
        free(r.logits);
        free(r.depths);
      }
      mor_module_free(parsed);
    }
    (void)n_pass;
    free(spec);
    mor_module_free(m);
    mor_weights_free(w2);
    mor_config_free(c2);
  }
  free(ref_whole.logits);
  free(ref_whole.depths);
  free(ref_chunk.logits);
  free(ref_chunk.depths);
  free(toks);
  free(chunks);
  mor_module_free(base);
  mor_weights_free(w);
  mor_config_free(cfg);
  printf("%s: %d failure(s)\n", json, failures);
  return failures ? 1 : 0;
}
