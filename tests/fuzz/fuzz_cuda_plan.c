/* fuzz_cuda_plan.c: the launch-plan reader of CUDA executables
 * (morcu_plan_read, runtime/cuda_plan.c), which a runner applies to the
 * bytes at the end of its own file. Bad input gets a message that starts
 * with "launch plan:"; a plan it accepts must keep every index and size
 * the CUDA runtime uses within bounds. Seeds: plans of example variants
 * with their PTX and cubin cut short (tests/fuzz/mkplanseed.py). */
#include "tests/fuzz/fuzz.h"
#include "runtime/cuda_plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512] = "";
  morcu_plan *p = morcu_plan_read(data, size, err, sizeof err);
  if (!p) {
    fuzz_check_message(err, "launch plan:");
    return 0;
  }
  FUZZ_CHECK(p->vocab >= 1 && p->max_tokens >= 1 && p->n_cnt >= 1, "sizes");
  FUZZ_CHECK(p->name && p->arch && p->ptx, "strings");
  for (int64_t i = 0; i < p->n_steps; i++) {
    const morcu_step *s = &p->steps[i];
    FUZZ_CHECK(s->label >= 0 && s->label < p->n_labels && p->labels[s->label], "step %lld label", (long long)i);
    FUZZ_CHECK(s->first_param >= 0 && s->n_params >= 0 && s->first_param + s->n_params <= p->n_params,
               "step %lld parameters", (long long)i);
    int covers = 0;
    for (int v = 0; v < MORCU_VARIANTS; v++) {
      const morcu_launch *l = &s->var[v];
      if (l->kernel < 0) continue;
      FUZZ_CHECK(l->kernel < p->n_kernels && p->kernel_names[l->kernel], "step %lld kernel", (long long)i);
      for (int d = 0; d < 3; d++) FUZZ_CHECK(l->block[d] >= 1 && l->block[d] <= 1024, "block");
      covers |= s->max_t[v] >= p->max_tokens;
    }
    FUZZ_CHECK(covers, "step %lld has no kernel for max_tokens", (long long)i);
  }
  for (int64_t i = 0; i < p->n_params; i++) FUZZ_CHECK(p->params[i].kind < MORCU_P_KINDS, "parameter kind");
  for (int64_t i = 0; i < p->n_weights; i++)
    FUZZ_CHECK(p->weights[i].offset + p->weights[i].bytes <= (uint64_t)p->weights_bytes, "weight bounds");
  FUZZ_CHECK(p->logits_off + 4 * p->max_tokens * p->vocab <= p->arena_bytes, "logits in the arena");
  morcu_plan_free(p);
  return 0;
}
