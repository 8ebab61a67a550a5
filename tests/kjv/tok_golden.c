/* tok_golden.c: the runtime's tokenizer (runtime/tokenizer.h) against golden
 * encodings made by the Hugging Face `tokenizers` package (make_golden.py):
 * for each NAME given, NAME.txt (raw bytes) must encode to the ids of NAME.ids
 * (decimal, whitespace separated) and those ids must decode back to the bytes.
 * usage: tok_golden TOKENIZER.json DIR NAME...   (exit 0 when all match) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/tokenizer.h"

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    free(b);
    return NULL;
  }
  fclose(f);
  b[n] = 0;
  *len = (size_t)n;
  return b;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: tok_golden TOKENIZER.json DIR NAME...\n");
    return 2;
  }
  char err[512];
  morrt_tokenizer *tok = morrt_tokenizer_load(argv[1], err, sizeof err);
  if (!tok) {
    fprintf(stderr, "tok_golden: %s\n", err);
    return 1;
  }
  int bad = 0;
  for (int a = 3; a < argc; a++) {
    char path[4096];
    size_t tlen, ilen;
    snprintf(path, sizeof path, "%s/%s.txt", argv[2], argv[a]);
    char *text = slurp(path, &tlen);
    snprintf(path, sizeof path, "%s/%s.ids", argv[2], argv[a]);
    char *idtxt = slurp(path, &ilen);
    if (!text || !idtxt) {
      fprintf(stderr, "tok_golden: %s: cannot read\n", path);
      return 1;
    }
    size_t ng = 0, cap = 1024;
    int32_t *gold = malloc(cap * sizeof *gold);
    for (char *p = idtxt, *e; *p;) {
      long v = strtol(p, &e, 10);
      if (e == p) {
        if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
          p++;
          continue;
        }
        fprintf(stderr, "tok_golden: %s: bad id text\n", path);
        return 1;
      }
      if (ng == cap) gold = realloc(gold, (cap *= 2) * sizeof *gold);
      gold[ng++] = (int32_t)v;
      p = e;
    }
    int32_t *ids;
    size_t n;
    if (morrt_tokenizer_encode(tok, text, tlen, &ids, &n) != 0) {
      fprintf(stderr, "tok_golden: out of memory\n");
      return 1;
    }
    size_t i = 0;
    while (i < n && i < ng && ids[i] == gold[i]) i++;
    if (n != ng || i < n) {
      fprintf(stderr, "FAIL %s: encode gives %zu ids, golden %zu; first difference at id %zu (%d vs %d)\n",
              argv[a], n, ng, i, i < n ? ids[i] : -1, i < ng ? gold[i] : -1);
      bad = 1;
    }
    size_t dlen;
    char *dec = morrt_tokenizer_decode(tok, gold, ng, &dlen);
    if (!dec || dlen != tlen || memcmp(dec, text, tlen) != 0) {
      fprintf(stderr, "FAIL %s: decoding the golden ids does not give the text back\n", argv[a]);
      bad = 1;
    } else if (!bad) {
      printf("ok: %s (%zu bytes, %zu ids)\n", argv[a], tlen, ng);
    }
    free(dec);
    free(ids);
    free(gold);
    free(text);
    free(idtxt);
  }
  morrt_tokenizer_free(tok);
  return bad;
}
