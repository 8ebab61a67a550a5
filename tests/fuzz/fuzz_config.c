/* fuzz_config.c: model.json / config.json parsing and validation
 * (mor_config_parse). A config that loads must map every unrolled layer to
 * a block layer and a depth in range; one that fails must say where. */
#include "tests/fuzz/fuzz.h"
#include "frontend/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mor_quiet_warnings = 1;
  mor_err e = {{0}};
  mor_config *c = mor_config_parse("fuzz.json", (const char *)data, size, &e);
  if (!c) {
    fuzz_check_message(e.msg, "fuzz.json");
    return 0;
  }
  FUZZ_CHECK(c->n_r >= 1 && c->n_r <= 64, "n_r %d", c->n_r);
  FUZZ_CHECK(c->n_block >= 1, "n_block %d", c->n_block);
  FUZZ_CHECK(c->num_layers == c->n_prefix + c->n_suffix + (int64_t)c->n_block * c->n_r, "layer count");
  for (int r = 1; r < c->n_r; r++) FUZZ_CHECK(c->capacity[r] <= c->capacity[r - 1], "capacity not non-increasing");
  for (int64_t l = 0; l < c->num_layers; l++) {
    mor_layer_use u = mor_config_layer(c, l);
    if (u.role == MOR_LAYER_BLOCK)
      FUZZ_CHECK(u.index >= 0 && u.index < c->n_block && u.depth >= 0 && u.depth < c->n_r,
                 "layer %lld -> block %d depth %d", (long long)l, u.index, u.depth);
  }
  mor_config_free(c);
  return 0;
}
