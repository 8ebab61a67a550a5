/* fuzz_safetensors.c: safetensors headers and offsets
 * (mor_safetensors_open), then weight-name resolution against a small MoR
 * model (mor_resolve) and lowering. Every tensor of an opened file must lie
 * inside the mapping; failures must name the file. */
#include "tests/fuzz/fuzz.h"
#include <unistd.h>
#include "frontend/lower.h"
#include "frontend/model.h"

/* The model of tests/bad/frontend/valid.json (expert_choice, middle_cycle,
 * 2 recursions, 4 layers); its valid.safetensors is in the seed corpus. */
static const char model_json[] =
    "{\"model_type\": \"mor\", \"vocab_size\": 8, \"hidden_size\": 4, \"intermediate_size\": 8,"
    " \"num_hidden_layers\": 4, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 2,"
    " \"max_position_embeddings\": 64, \"tie_word_embeddings\": true,"
    " \"mor\": {\"num_recursions\": 2, \"sharing\": \"middle_cycle\", \"routing\": \"expert_choice\","
    " \"capacity\": [1.0, 0.5]}}";

static char path[256];
static mor_config *cfg;

static void cleanup(void) {
  if (path[0]) unlink(path);
  mor_config_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mor_quiet_warnings = 1;
  mor_err e = {{0}};
  if (!path[0]) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/morc-fuzz-%ld.safetensors", dir && dir[0] ? dir : "/tmp", (long)getpid());
    cfg = mor_config_parse("fuzz.json", model_json, sizeof model_json - 1, &e);
    FUZZ_CHECK(cfg, "%s", e.msg);
    atexit(cleanup);
  }
  FILE *f = fopen(path, "wb");
  FUZZ_CHECK(f && fwrite(data, 1, size, f) == size && fclose(f) == 0, "cannot write %s", path);
  mor_weights *w = mor_safetensors_open(path, &e);
  if (!w) {
    fuzz_check_message(e.msg, NULL);
    FUZZ_CHECK(strstr(e.msg, path), "message does not name the file: %s", e.msg);
    return 0;
  }
  const uint8_t *map = w->maps[0];
  for (int i = 0; i < w->n_tensors; i++) {
    const mor_tensor *t = &w->tensors[i];
    const uint8_t *p = t->data;
    FUZZ_CHECK(p >= map + 8 && p + t->nbytes <= map + w->map_sizes[0], "tensor %d outside the file", i);
    FUZZ_CHECK(t->nbytes == (uint64_t)t->numel * (uint64_t)mor_dtype_size(t->dtype), "tensor %d size", i);
    if (t->numel) {
      volatile float x = mor_tensor_get(t, 0) + mor_tensor_get(t, t->numel - 1);
      (void)x;
    }
    if (i) FUZZ_CHECK(strcmp(w->tensors[i - 1].name, t->name) < 0, "tensors not sorted or a duplicate");
    FUZZ_CHECK(mor_weights_find(w, t->name) == t, "lookup of tensor %d", i);
  }
  mor_resolved *r = mor_resolve(cfg, w, &e);
  if (!r) {
    fuzz_check_message(e.msg, NULL);
  } else {
    mor_module *m = mor_lower(cfg, r, &e);
    FUZZ_CHECK(m, "lowering failed: %s", e.msg);
    FUZZ_CHECK(mor_verify_module(m, &e) == 0, "lowered IR does not verify: %s", e.msg);
    mor_module_free(m);
    mor_resolved_free(r);
  }
  mor_weights_free(w);
  return 0;
}
