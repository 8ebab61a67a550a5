/* nvrtc.c: compile the generated source with NVRTC for the chosen arch,
 * keeping the PTX and the cubin. A failure shows NVRTC's program log and
 * names the kernel instance(s) it points at: by the lines of their wrappers
 * in the source, and by the instance names in NVRTC's instantiation notes. */
#include <nvrtc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_impl.h"

/* the kernels the log is about, e.g. "mor_k3_gemm_mma (line 912), mor_k7_rope" */
static void kernels_in_log(const mor_cuda_prog *p, const char *log, mor_buf *out) {
  char *seen = mor_xcalloc((size_t)p->n_k + 1, 1);
  int lib = 0, n = 0;
  for (const char *s = log; (s = strstr(s, ".cu(")); s++) {
    int line = atoi(s + 4);
    int hit = 0;
    for (int i = 0; i < p->n_k; i++)
      if (line >= p->k[i].line0 && line <= p->k[i].line1 && !seen[i]) {
        seen[i] = 1;
        hit = 1;
        mor_buf_printf(out, "%s%s (line %d)", n++ ? ", " : "", p->k[i].name, line);
      }
    if (!hit && p->n_k && line < p->k[0].line0) lib = 1;
  }
  for (int i = 0; i < p->n_k; i++)
    if (!seen[i] && strstr(log, p->k[i].name)) {
      seen[i] = 1;
      mor_buf_printf(out, "%s%s", n++ ? ", " : "", p->k[i].name);
    }
  if (lib) mor_buf_printf(out, "%sthe kernel library (kernels.cuh)", n++ ? ", " : "");
  if (!n) mor_buf_puts(out, "(no kernel named in the log)");
  mor_buf_putc(out, 0);
  free(seen);
}

int mor_cuda_nvrtc(mor_cuda_prog *p, mor_err *err) {
  nvrtcProgram prog;
  nvrtcResult r = nvrtcCreateProgram(&prog, mor_cuda_source(p), "morc_kernels.cu", 0, NULL, NULL);
  if (r != NVRTC_SUCCESS) {
    mor_errf(err, "cuda: NVRTC: cannot create the program: %s", nvrtcGetErrorString(r));
    return -1;
  }
  char arch[48];
  snprintf(arch, sizeof arch, "--gpu-architecture=%s", p->arch);
  const char *opts[] = {arch, "-std=c++17", "--fmad=true", "-lineinfo"};
  r = nvrtcCompileProgram(prog, 4, opts);
  size_t logn = 0;
  nvrtcGetProgramLogSize(prog, &logn);
  char *log = mor_xcalloc(logn + 1, 1);
  if (logn) nvrtcGetProgramLog(prog, log);
  if (r != NVRTC_SUCCESS) {
    mor_buf ks = {0};
    kernels_in_log(p, log, &ks);
    /* keep the message within mor_err: the head of the log is where the first error is */
    mor_errf(err, "cuda: NVRTC could not compile the kernels for %s (%s) in: %s\n%.1500s", p->arch,
             nvrtcGetErrorString(r), ks.data, log);
    mor_buf_free(&ks);
    free(log);
    nvrtcDestroyProgram(&prog);
    return -1;
  }
  free(log);
  size_t n = 0;
  if (nvrtcGetPTXSize(prog, &n) != NVRTC_SUCCESS) goto fail;
  free(p->ptx);
  p->ptx = mor_xmalloc(n + 1);
  if (nvrtcGetPTX(prog, p->ptx) != NVRTC_SUCCESS) goto fail;
  p->ptx[n] = 0;
  n = 0;
  if (nvrtcGetCUBINSize(prog, &n) != NVRTC_SUCCESS) goto fail;
  free(p->cubin);
  p->cubin = mor_xmalloc(n + 1);
  p->cubin_size = n;
  if (n && nvrtcGetCUBIN(prog, (char *)p->cubin) != NVRTC_SUCCESS) goto fail;
  nvrtcDestroyProgram(&prog);
  return 0;
fail:
  nvrtcDestroyProgram(&prog);
  mor_errf(err, "cuda: NVRTC: cannot read the compiled program");
  return -1;
}

const char *mor_cuda_ptx(const mor_cuda_prog *p) { return p->ptx; }

const void *mor_cuda_cubin(const mor_cuda_prog *p, size_t *size) {
  if (size) *size = p->cubin_size;
  return p->cubin;
}
