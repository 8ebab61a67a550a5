/* target.c: the LLVM side of the backend: target machines (host CPU and
 * features by default), the embedded kernel bitcode, the optimization
 * pipeline (new pass manager, default<On>), emission of .ll/.s/.o, and the
 * diagnostic handler that turns LLVM's errors into morc errors. */
#include "backend/llvm/llvm_impl.h"
#include "runtime/morrt_abi.h"
#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/Error.h>
#include <llvm-c/Linker.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* LLVM takes any --cpu and --features: it prints "'X' is not a recognized
 * processor for this target (ignoring processor)" to stderr and goes on
 * with a generic CPU; on x86-64 that generic CPU then lacks 64-bit mode and
 * code generation aborts the process. The C API cannot ask whether a name
 * is known, so a probe compiles an empty function for the target with
 * stderr captured and looks for those warnings. Returns 0, or -1 with err. */
static int probe_cpu(const char *triple, const char *cpu, const char *features, mor_err *err) {
  LLVMTargetRef t;
  char *msg = NULL;
  if (LLVMGetTargetFromTriple(triple, &t, &msg)) {
    mor_errf(err, "--target %s: %s", triple, msg ? msg : "unknown target");
    LLVMDisposeMessage(msg);
    return -1;
  }
  /* +64bit keeps an x86-64 probe with an unknown CPU from aborting */
  mor_buf f = {0};
  mor_buf_puts(&f, features);
  if (!strncmp(triple, "x86_64", 6)) mor_buf_puts(&f, f.len ? ",+64bit" : "+64bit");
  mor_buf_putc(&f, 0);
  /* stderr into a temporary file while LLVM makes the target machine and its subtarget */
  char said[4096] = "";
  FILE *cap = tmpfile();
  int saved = cap ? dup(2) : -1;
  fflush(stderr);
  if (saved >= 0) dup2(fileno(cap), 2);
  LLVMTargetMachineRef tm = LLVMCreateTargetMachine(t, triple, cpu, f.data, LLVMCodeGenLevelNone, LLVMRelocPIC,
                                                    LLVMCodeModelDefault);
  mor_buf_free(&f);
  LLVMContextRef cx = LLVMContextCreate();
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("morc-cpu-probe", cx);
  LLVMSetTarget(m, triple);
  LLVMValueRef fn = LLVMAddFunction(m, "probe", LLVMFunctionType(LLVMVoidTypeInContext(cx), NULL, 0, 0));
  LLVMBuilderRef b = LLVMCreateBuilderInContext(cx);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(cx, fn, "entry"));
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
  LLVMMemoryBufferRef obj = NULL;
  char *emsg = NULL;
  LLVMBool failed = tm ? LLVMTargetMachineEmitToMemoryBuffer(tm, m, LLVMObjectFile, &emsg, &obj) : 1;
  fflush(stderr);
  if (saved >= 0) {
    dup2(saved, 2);
    close(saved);
    rewind(cap);
    size_t n = fread(said, 1, sizeof said - 1, cap);
    said[n] = 0;
  }
  if (cap) fclose(cap);
  if (obj) LLVMDisposeMemoryBuffer(obj);
  LLVMDisposeModule(m);
  LLVMContextDispose(cx);
  if (tm) LLVMDisposeTargetMachine(tm);
  int rc = 0;
  if (strstr(said, "is not a recognized processor")) {
    mor_errf(err, "--cpu %s: LLVM does not know this processor for %s (%s; 'native' for this machine's; "
                  "'llc-19 -mtriple=%s -mcpu=help' lists them)", cpu, triple,
             strncmp(triple, "x86_64", 6) ? "e.g. generic" : "e.g. znver4, skylake-avx512, x86-64-v3, generic", triple);
    rc = -1;
  } else if (strstr(said, "is not a recognized feature")) {
    mor_errf(err, "--features '%s': LLVM does not know a feature in it for %s (e.g. +avx2,+fma)", features, triple);
    rc = -1;
  } else if (failed) {
    mor_errf(err, "--cpu %s / --features '%s': LLVM cannot generate code: %s", cpu, features, emsg ? emsg : "?");
    rc = -1;
  } else if (said[0]) {
    fputs(said, stderr); /* anything else LLVM had to say */
  }
  if (emsg) LLVMDisposeMessage(emsg);
  return rc;
}

/* The triple, CPU and features a build uses (host CPU and features by
 * default), checked when --cpu or --features came from the user. */
static int resolve_target(const mor_llvm_opts *o, char **triple, char **cpu, char **features, mor_err *err) {
  char *def = LLVMGetDefaultTargetTriple();
  char *norm = o->triple ? LLVMNormalizeTargetTriple(o->triple) : NULL;
  int host = !norm || !strcmp(norm, def);
  *triple = mor_xstrdup(norm ? norm : def);
  *cpu = *features = NULL;
  LLVMDisposeMessage(def);
  if (norm) LLVMDisposeMessage(norm);
  if (o->cpu && !strcmp(o->cpu, "native")) {
    if (!host) {
      mor_errf(err, "--cpu native: this machine's CPU, but --target %s is not this machine's target", *triple);
      return -1;
    }
    char *c = LLVMGetHostCPUName();
    *cpu = mor_xstrdup(c);
    LLVMDisposeMessage(c);
    if (!o->features) {
      char *f = LLVMGetHostCPUFeatures();
      *features = mor_xstrdup(f);
      LLVMDisposeMessage(f);
    }
  } else if (o->cpu) {
    *cpu = mor_xstrdup(o->cpu);
  } else if (host) {
    char *c = LLVMGetHostCPUName();
    *cpu = mor_xstrdup(c);
    LLVMDisposeMessage(c);
  } else {
    *cpu = mor_xstrdup("generic");
  }
  if (*features) {
    /* --cpu native: the host's */
  } else if (o->features) {
    *features = mor_xstrdup(o->features);
  } else if (host && !o->cpu) {
    char *f = LLVMGetHostCPUFeatures();
    *features = mor_xstrdup(f);
    LLVMDisposeMessage(f);
  } else {
    *features = mor_xstrdup("");
  }
  if (!o->cpu && !o->features) return 0;
  /* morc build checks its options before it builds (mor_llvm_check_target), then makes the
   * target machine: the second time the same target needs no probe */
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  static char *known; /* "triple\ncpu\nfeatures" that passed the probe */
  mor_buf key = {0};
  mor_buf_printf(&key, "%s\n%s\n%s", *triple, *cpu, *features);
  mor_buf_putc(&key, 0);
  pthread_mutex_lock(&mu);
  int rc = known && !strcmp(known, key.data) ? 0 : probe_cpu(*triple, *cpu, *features, err);
  if (!rc && (!known || strcmp(known, key.data))) {
    free(known);
    known = mor_xstrdup(key.data);
  }
  pthread_mutex_unlock(&mu);
  mor_buf_free(&key);
  return rc;
}

/* 1 when the comma-separated LLVM feature list enables feature f ("+name") */
static int has_feature(const char *list, const char *f) {
  size_t n = strlen(f);
  for (const char *p = list; p && *p;) {
    const char *e = strchr(p, ',');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l == n && !strncmp(p, f, n)) return 1;
    p = e ? e + 1 : NULL;
  }
  return 0;
}

/* --bf16-dot: bf16 weights, and a target that has AVX512-BF16 */
static int check_bf16_dot(const mor_llvm_opts *o, const char *features, mor_err *err) {
  if (!o->bf16_dot) return 0;
  if (o->weights_format != MORRT_FMT_BF16) {
    mor_errf(err, "%s", "--bf16-dot multiplies bf16 weights: add --weights-dtype bf16");
    return -1;
  }
  if (!has_feature(features, "+avx512bf16")) {
    mor_errf(err,
             "--bf16-dot needs a target with AVX512-BF16, and this build's features do not include +avx512bf16 "
             "(%s; with --cpu NAME, add --features +avx512bf16 if NAME has it)",
             o->cpu || o->features || o->triple ? "for the --target/--cpu/--features given" : "this machine's CPU lacks it");
    return -1;
  }
  return 0;
}

int mor_llvm_check_target(const mor_llvm_opts *o, mor_err *err) {
  if (mor_llvm_init_targets(err)) return -1;
  char *triple, *cpu, *features;
  int rc = resolve_target(o, &triple, &cpu, &features, err);
  if (!rc) rc = check_bf16_dot(o, features, err);
  free(triple), free(cpu), free(features);
  return rc;
}

int mor_llvm_make_tm(mor_llvm_module *lm, const mor_llvm_opts *o, mor_err *err) {
  if (resolve_target(o, &lm->triple, &lm->cpu, &lm->features, err)) return -1;
  if (check_bf16_dot(o, lm->features, err)) return -1;
  lm->bf16_dot = o->bf16_dot;
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
  /* Without --bf16-dot the AVX512-BF16 tile is never called (mork_matmul_w checks a flag that
   * generated code then never sets), but at -O0 the call stays, and its instructions do not
   * exist on other targets: an empty body takes its place. */
  LLVMValueRef fn = LLVMGetNamedFunction(lm->mod, "mork_gemm_tile_bf16dot");
  if (fn && !lm->bf16_dot && !LLVMIsDeclaration(fn)) {
    LLVMValueRef stub = LLVMAddFunction(lm->mod, "mork_gemm_tile_bf16dot.none", LLVMGlobalGetValueType(fn));
    LLVMBuilderRef b = LLVMCreateBuilderInContext(lm->cx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(lm->cx, stub, ""));
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
    LLVMReplaceAllUsesWith(fn, stub);
    LLVMDeleteFunction(fn);
    LLVMSetValueName2(stub, "mork_gemm_tile_bf16dot", strlen("mork_gemm_tile_bf16dot"));
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
