/* target.c: the LLVM side of the backend: target machines (host CPU and
 * features by default), the embedded kernel bitcode, the optimization
 * pipeline (new pass manager, default<On>), emission of .ll/.s/.o, and the
 * diagnostic handler that turns LLVM's errors into morc errors. */
#include "backend/llvm/llvm_impl.h"
#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/Error.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int mor_llvm_codegen_desc(lg *g, const char *name, const char *triple, const char *cpu);
void mor_llvm_codegen_free(lg *g);

void mor_llvm_opts_default(mor_llvm_opts *o) {
  memset(o, 0, sizeof *o);
  o->opt_level = 3;
}

int mor_llvm_is_host_triple(const char *triple) {
  char *def = LLVMGetDefaultTargetTriple(), *norm = LLVMNormalizeTargetTriple(triple);
  int same = !strcmp(def, norm);
  LLVMDisposeMessage(def);
  LLVMDisposeMessage(norm);
  return same;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void init_all(void) {
  LLVMInitializeAllTargetInfos();
  LLVMInitializeAllTargets();
  LLVMInitializeAllTargetMCs();
  LLVMInitializeAllAsmPrinters();
  LLVMInitializeAllAsmParsers();
}

int mor_llvm_init_targets(mor_err *err) {
  (void)err;
  pthread_once(&init_once, init_all);
  return 0;
}

/* ---- diagnostics ------------------------------------------------------------- */

static void diag_handler(LLVMDiagnosticInfoRef di, void *ctx) {
  mor_llvm_module *lm = ctx;
  LLVMDiagnosticSeverity sev = LLVMGetDiagInfoSeverity(di);
  char *d = LLVMGetDiagInfoDescription(di);
  if (sev == LLVMDSError) {
    if (lm->diag_errors++) mor_buf_puts(&lm->diag, "; ");
    mor_buf_puts(&lm->diag, d);
  } else if (sev == LLVMDSWarning) {
    mor_warnf("llvm: %s", d);
  }
  LLVMDisposeMessage(d);
}

void mor_llvm_install_diag(mor_llvm_module *lm) { LLVMContextSetDiagnosticHandler(lm->cx, diag_handler, lm); }

int mor_llvm_diag_failed(mor_llvm_module *lm, const char *what, mor_err *err) {
  if (!lm->diag_errors) return 0;
  mor_buf_putc(&lm->diag, 0);
  mor_errf(err, "llvm: %s: %s", what, lm->diag.data);
  lm->diag.len = 0;
  lm->diag_errors = 0;
  return 1;
}

static int llvm_error(LLVMErrorRef e, const char *what, mor_err *err) {
  if (!e) return 0;
  char *msg = LLVMGetErrorMessage(e);
  mor_errf(err, "llvm: %s: %s", what, msg);
  LLVMDisposeErrorMessage(msg);
  return -1;
}

/* ---- target machines ---------------------------------------------------------- */

static LLVMCodeGenOptLevel cg_level(int opt) {
  return opt <= 0 ? LLVMCodeGenLevelNone : opt == 1 ? LLVMCodeGenLevelLess : opt == 2 ? LLVMCodeGenLevelDefault
                                                                                    : LLVMCodeGenLevelAggressive;
}

static LLVMTargetMachineRef make_tm(const char *triple, const char *cpu, const char *features, int opt,
                                    mor_err *err) {
  LLVMTargetRef t;
  char *msg = NULL;
  if (LLVMGetTargetFromTriple(triple, &t, &msg)) {
    mor_errf(err, "--target %s: %s", triple, msg ? msg : "unknown target");
    LLVMDisposeMessage(msg);
    return NULL;
  }
  return LLVMCreateTargetMachine(t, triple, cpu, features, cg_level(opt), LLVMRelocPIC, LLVMCodeModelDefault);
}

int mor_llvm_make_tm(mor_llvm_module *lm, const mor_llvm_opts *o, mor_err *err) {
  char *def = LLVMGetDefaultTargetTriple();
  char *norm = o->triple ? LLVMNormalizeTargetTriple(o->triple) : NULL;
  int host = !norm || !strcmp(norm, def);
  lm->triple = mor_xstrdup(norm ? norm : def);
  LLVMDisposeMessage(def);
  if (norm) LLVMDisposeMessage(norm);
  if (o->cpu) {
    lm->cpu = mor_xstrdup(o->cpu);
  } else if (host) {
    char *c = LLVMGetHostCPUName();
    lm->cpu = mor_xstrdup(c);
    LLVMDisposeMessage(c);
  } else {
    lm->cpu = mor_xstrdup("generic");
  }
  if (o->features) {
    lm->features = mor_xstrdup(o->features);
  } else if (host && !o->cpu) {
    char *f = LLVMGetHostCPUFeatures();
    lm->features = mor_xstrdup(f);
    LLVMDisposeMessage(f);
  } else {
    lm->features = mor_xstrdup("");
  }
  lm->tm = make_tm(lm->triple, lm->cpu, lm->features, o->opt_level, err);
  return lm->tm ? 0 : -1;
}

LLVMTargetMachineRef mor_llvm_clone_tm(const mor_llvm_module *lm, int jit, mor_err *err) {
  (void)jit;
  return make_tm(lm->triple, lm->cpu, lm->features, 2, err);
}

/* ---- kernels ------------------------------------------------------------------------ */

int mor_llvm_link_kernels(mor_llvm_module *lm, mor_err *err) {
  LLVMMemoryBufferRef mb =
      LLVMCreateMemoryBufferWithMemoryRange((const char *)mor_kernels_bc, (size_t)mor_kernels_bc_size, "mork.bc", 0);
  LLVMModuleRef km = NULL;
  if (LLVMParseBitcodeInContext2(lm->cx, mb, &km)) {
    LLVMDisposeMemoryBuffer(mb);
    mor_llvm_diag_failed(lm, "kernel bitcode", err);
    if (!err->msg[0]) mor_errf(err, "llvm: internal error: the embedded kernel bitcode does not parse");
    return -1;
  }
  LLVMDisposeMemoryBuffer(mb);
  LLVMSetTarget(km, LLVMGetTarget(lm->mod));
  LLVMSetDataLayout(km, LLVMGetDataLayoutStr(lm->mod));
  if (LLVMLinkModules2(lm->mod, km)) {
    if (!mor_llvm_diag_failed(lm, "linking the kernels", err)) mor_errf(err, "llvm: linking the kernel library failed");
    return -1;
  }
  return 0;
}

static void set_str_attr(LLVMContextRef cx, LLVMValueRef fn, const char *k, const char *v) {
  LLVMRemoveStringAttributeAtIndex(fn, LLVMAttributeFunctionIndex, k, (unsigned)strlen(k));
  if (!v || !*v) return;
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                          LLVMCreateStringAttribute(cx, k, (unsigned)strlen(k), v, (unsigned)strlen(v)));
}

int mor_llvm_optimize(mor_llvm_module *lm, int opt_level, mor_err *err) {
  unsigned always = LLVMGetEnumAttributeKindForName("alwaysinline", 12);
  unsigned noinl = LLVMGetEnumAttributeKindForName("noinline", 8);
  unsigned nounw = LLVMGetEnumAttributeKindForName("nounwind", 8);
  for (LLVMValueRef fn = LLVMGetFirstFunction(lm->mod); fn; fn = LLVMGetNextFunction(fn)) {
    if (LLVMIsDeclaration(fn)) continue;
    size_t len;
    const char *name = LLVMGetValueName2(fn, &len);
    if (!strncmp(name, "mork_", 5)) {
      LLVMSetLinkage(fn, LLVMInternalLinkage);
      LLVMSetVisibility(fn, LLVMDefaultVisibility);
      LLVMRemoveEnumAttributeAtIndex(fn, LLVMAttributeFunctionIndex, noinl);
      LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(lm->cx, always, 0));
    }
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(lm->cx, nounw, 0));
    set_str_attr(lm->cx, fn, "target-cpu", lm->cpu);
    set_str_attr(lm->cx, fn, "target-features", lm->features);
    set_str_attr(lm->cx, fn, "tune-cpu", NULL);
  }
  char *msg = NULL;
  if (LLVMVerifyModule(lm->mod, LLVMReturnStatusAction, &msg)) {
    mor_errf(err, "llvm: internal error: the generated LLVM IR does not verify: %s", msg ? msg : "");
    LLVMDisposeMessage(msg);
    return -1;
  }
  LLVMDisposeMessage(msg);
  char pipeline[32];
  snprintf(pipeline, sizeof pipeline, "default<O%d>", opt_level < 0 ? 0 : opt_level > 3 ? 3 : opt_level);
  LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
  LLVMErrorRef e = LLVMRunPasses(lm->mod, pipeline, lm->tm, po);
  LLVMDisposePassBuilderOptions(po);
  if (llvm_error(e, "optimization", err)) return -1;
  if (mor_llvm_diag_failed(lm, "optimization", err)) return -1;
  return 0;
}

/* ---- whole build ----------------------------------------------------------------------- */

static int is_ident(const char *s) {
  if (!s || !*s || (*s >= '0' && *s <= '9')) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_')) return 0;
  return 1;
}

mor_llvm_module *mor_llvm_build(const mor_module *m, const mor_llvm_opts *o, LLVMContextRef cx, mor_err *err) {
  const char *name = o->name ? o->name : "mor";
  if (!is_ident(name)) {
    mor_errf(err, "symbol prefix '%s' is not a C identifier", name);
    return NULL;
  }
  if (mor_verify_module(m, err) != 0) return NULL;
  mor_llvm_init_targets(err);
  mor_llvm_module *lm = mor_xcalloc(1, sizeof *lm);
  lm->cx = cx;
  mor_llvm_install_diag(lm);
  if (mor_llvm_make_tm(lm, o, err)) goto fail;
  lm->mod = LLVMModuleCreateWithNameInContext(m->name ? m->name : "mor", cx);
  LLVMSetTarget(lm->mod, lm->triple);
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(lm->tm);
  LLVMSetModuleDataLayout(lm->mod, td);
  LLVMDisposeTargetData(td);
  if (mor_llvm_link_kernels(lm, err)) goto fail;
  lg g = {.cx = cx, .mod = lm->mod, .m = m, .o = o, .err = err, .max_tokens = o->max_tokens};
  int rc = mor_llvm_codegen(&g);
  if (!rc) rc = mor_llvm_codegen_desc(&g, name, lm->triple, lm->cpu);
  lm->info.arena_bytes = g.arena_bytes;
  lm->info.n_kv_stores = g.n_stores;
  lm->info.n_weights = g.n_wslots;
  lm->info.max_tokens = g.max_tokens;
  lm->info.n_instances = g.n_inst;
  int64_t kvb = 0;
  for (int i = 0; i < g.n_stores; i++) {
    const mor_global *gl = &m->globals[g.store_global[i]];
    kvb += mp_dim(m, gl->type.dims[0], 0) * (gl->type.dims[1].n * gl->type.dims[2].n * 8 + 4);
  }
  lm->info.kv_bytes = kvb;
  mor_llvm_codegen_free(&g);
  if (rc || mor_llvm_diag_failed(lm, "code generation", err)) goto fail;
  if (mor_llvm_optimize(lm, o->opt_level, err)) goto fail;
  lm->info.triple = lm->triple;
  lm->info.cpu = lm->cpu;
  return lm;
fail:
  lm->cx = NULL; /* the caller owns the context */
  mor_llvm_module_free(lm);
  return NULL;
}

mor_llvm_module *mor_llvm_compile(const mor_module *m, const mor_llvm_opts *o, mor_err *err) {
  LLVMContextRef cx = LLVMContextCreate();
  mor_llvm_module *lm = mor_llvm_build(m, o, cx, err);
  if (!lm) {
    LLVMContextDispose(cx);
    return NULL;
  }
  return lm;
}

void mor_llvm_get_info(const mor_llvm_module *lm, mor_llvm_info *info) { *info = lm->info; }

int mor_llvm_write(mor_llvm_module *lm, mor_emit_kind kind, const char *path, mor_err *err) {
  if (kind == MOR_EMIT_LLVM) {
    char *text = LLVMPrintModuleToString(lm->mod);
    int rc = mor_write_file_atomic(path, text, strlen(text), err);
    LLVMDisposeMessage(text);
    return rc;
  }
  char *msg = NULL;
  LLVMMemoryBufferRef mb = NULL;
  if (LLVMTargetMachineEmitToMemoryBuffer(lm->tm, lm->mod, kind == MOR_EMIT_ASM ? LLVMAssemblyFile : LLVMObjectFile,
                                          &msg, &mb)) {
    mor_errf(err, "llvm: emitting %s: %s", kind == MOR_EMIT_ASM ? "assembly" : "the object file", msg ? msg : "failed");
    LLVMDisposeMessage(msg);
    return -1;
  }
  if (mor_llvm_diag_failed(lm, kind == MOR_EMIT_ASM ? "emitting assembly" : "emitting the object file", err)) {
    LLVMDisposeMemoryBuffer(mb);
    return -1;
  }
  int rc = mor_write_file_atomic(path, LLVMGetBufferStart(mb), LLVMGetBufferSize(mb), err);
  LLVMDisposeMemoryBuffer(mb);
  return rc;
}

void mor_llvm_module_free(mor_llvm_module *lm) {
  if (!lm) return;
  if (lm->mod) LLVMDisposeModule(lm->mod);
  if (lm->tm) LLVMDisposeTargetMachine(lm->tm);
  if (lm->cx) LLVMContextDispose(lm->cx);
  free(lm->triple);
  free(lm->cpu);
  free(lm->features);
  mor_buf_free(&lm->diag);
  free(lm);
}
