/* jit.c: `morc run --backend llvm`: the module is generated and optimized
 * as for `morc build`, then compiled in process by ORC LLJIT; the
 * descriptor it exports is bound to the already-open weights through
 * libmorrt, which runs forward calls exactly as in a built executable. */
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backend/llvm/llvm_impl.h"
#include "runtime/morrt.h"

struct mor_llvm_jit {
  LLVMOrcLLJITRef jit;
  mor_llvm_module *lm;  /* keeps the diagnostic handler's target alive */
  morrt_model *model;
  morrt_tensor_ref *refs;
};

struct mor_llvm_seq {
  mor_llvm_jit *j;
  morrt_seq *s;
};

static int orc_error(LLVMErrorRef e, const char *what, mor_err *err) {
  if (!e) return 0;
  char *msg = LLVMGetErrorMessage(e);
  mor_errf(err, "llvm jit: %s: %s", what, msg);
  LLVMDisposeErrorMessage(msg);
  return -1;
}

mor_llvm_jit *mor_llvm_jit_new(const mor_module *m, const mor_weights *w, const mor_llvm_opts *o, mor_err *err) {
  mor_llvm_opts opts;
  if (o) opts = *o;
  else mor_llvm_opts_default(&opts);
  opts.triple = NULL; /* the JIT runs here */
  opts.embed_weights = opts.embed_tokenizer = NULL;
  opts.main_alias = 0;
  if (!opts.name) opts.name = "mor";
  mor_llvm_jit *j = mor_xcalloc(1, sizeof *j);
  LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
  LLVMContextRef cx = LLVMOrcThreadSafeContextGetContext(tsc);
  j->lm = mor_llvm_build(m, &opts, cx, err);
  if (!j->lm) {
    LLVMOrcDisposeThreadSafeContext(tsc);
    free(j);
    return NULL;
  }
  j->lm->cx = NULL; /* owned by the thread-safe context */
  LLVMTargetMachineRef tm = mor_llvm_clone_tm(j->lm, 1, err);
  if (!tm) goto fail_tsc;
  LLVMOrcLLJITBuilderRef b = LLVMOrcCreateLLJITBuilder();
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(b, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
  if (orc_error(LLVMOrcCreateLLJIT(&j->jit, b), "creating the JIT", err)) goto fail_tsc;
  LLVMOrcDefinitionGeneratorRef gen;
  if (orc_error(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(j->jit), NULL,
                                                                     NULL),
                "process symbols", err))
    goto fail_tsc;
  LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(j->jit), gen);
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(j->lm->mod, tsc);
  j->lm->mod = NULL;
  LLVMOrcDisposeThreadSafeContext(tsc);
  tsc = NULL;
  if (orc_error(LLVMOrcLLJITAddLLVMIRModule(j->jit, LLVMOrcLLJITGetMainJITDylib(j->jit), tsm), "adding the module",
                err)) {
    LLVMOrcDisposeThreadSafeModule(tsm);
    goto fail;
  }
  char sym[256];
  snprintf(sym, sizeof sym, "%s_model", opts.name);
  LLVMOrcExecutorAddress addr = 0;
  if (orc_error(LLVMOrcLLJITLookup(j->jit, &addr, sym), "compiling", err)) goto fail;
  const morrt_desc *desc = (const morrt_desc *)(uintptr_t)addr;
  j->refs = mor_xcalloc((size_t)w->n_tensors + 1, sizeof *j->refs);
  for (int i = 0; i < w->n_tensors; i++) {
    const mor_tensor *t = &w->tensors[i];
    morrt_tensor_ref *r = &j->refs[i];
    r->name = t->name;
    r->dtype = t->dtype == MOR_F32 ? MORRT_F32 : t->dtype == MOR_F16 ? MORRT_F16 : t->dtype == MOR_BF16 ? MORRT_BF16 : -1;
    r->rank = t->rank;
    for (int d = 0; d < t->rank && d < 4; d++) r->shape[d] = t->shape[d];
    r->data = t->data;
  }
  morrt_options ro = {.threads = opts.threads, .pin = 1}; /* morc run's own process, as a built executable */
  char e[1024];
  j->model = morrt_model_bind(desc, j->refs, w->n_tensors, &ro, e, sizeof e);
  if (!j->model) {
    mor_errf(err, "%s", e);
    goto fail;
  }
  return j;
fail_tsc:
  if (tsc) LLVMOrcDisposeThreadSafeContext(tsc);
fail:
  mor_llvm_jit_free(j);
  return NULL;
}

void mor_llvm_jit_free(mor_llvm_jit *j) {
  if (!j) return;
  morrt_model_free(j->model);
  if (j->jit) LLVMOrcDisposeLLJIT(j->jit);
  mor_llvm_module_free(j->lm);
  free(j->refs);
  free(j);
}

mor_llvm_seq *mor_llvm_seq_new(mor_llvm_jit *j) {
  mor_llvm_seq *s = mor_xcalloc(1, sizeof *s);
  s->j = j;
  s->s = morrt_seq_new(j->model);
  if (!s->s) {
    free(s);
    return NULL;
  }
  return s;
}

void mor_llvm_seq_free(mor_llvm_seq *s) {
  if (!s) return;
  morrt_seq_free(s->s);
  free(s);
}

int64_t mor_llvm_seq_len(const mor_llvm_seq *s) { return morrt_seq_len(s->s); }

int mor_llvm_forward(mor_llvm_jit *j, mor_llvm_seq *s, const int32_t *tokens, int64_t T, float *logits,
                     int32_t *depths, mor_err *err) {
  if (s->j != j) {
    mor_errf(err, "@forward: the sequence belongs to another JIT");
    return -1;
  }
  char e[1024];
  if (morrt_forward(j->model, s->s, tokens, T, logits, depths, e, sizeof e)) {
    mor_errf(err, "@forward: %s", e);
    return -1;
  }
  return 0;
}
