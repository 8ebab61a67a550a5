/* replay.c: a main() for the fuzz harnesses without libFuzzer, so the
 * normal (gcc, ASan) build runs each harness over its seed corpus and its
 * regression inputs: replay_<harness> FILE-OR-DIR... */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tests/fuzz/fuzz.h"

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return -1;
  }
  size_t cap = 4096, n = 0, k;
  uint8_t *buf = malloc(cap);
  while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0)
    if ((n += k) == cap) buf = realloc(buf, cap *= 2);
  fclose(f);
  if (!buf) abort();
  /* an exact-size copy, so ASan sees a read one past the end */
  uint8_t *data = malloc(n ? n : 1);
  memcpy(data, buf, n);
  free(buf);
  LLVMFuzzerTestOneInput(data, n);
  free(data);
  return 0;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  int files = 0, bad = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s does not exist\n", argv[i]);
      bad++;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      bad += run_file(argv[i]) != 0;
      files++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    char **names = NULL;
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
      if (e->d_name[0] == '.') continue;
      names = realloc(names, sizeof(char *) * (size_t)(n + 1));
      names[n] = malloc(strlen(argv[i]) + strlen(e->d_name) + 2);
      sprintf(names[n++], "%s/%s", argv[i], e->d_name);
    }
    if (d) closedir(d);
    qsort(names, (size_t)n, sizeof(char *), name_cmp);
    for (int j = 0; j < n; j++) {
      bad += run_file(names[j]) != 0;
      files++;
      free(names[j]);
    }
    free(names);
  }
  printf("replayed %d inputs\n", files);
  return bad || files == 0;
}
