/* write.c: serialize a plan in the format of runtime/cuda_plan.h (read back
 * by morcu_plan_read; the field order here and there must match). */
#include <string.h>

#include "backend/cuda/cuda_impl.h"

static void w_u32(mor_buf *b, uint32_t v) {
  unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
  mor_buf_write(b, c, 4);
}
static void w_u64(mor_buf *b, uint64_t v) {
  unsigned char c[8];
  for (int i = 0; i < 8; i++) c[i] = (unsigned char)(v >> (8 * i));
  mor_buf_write(b, c, 8);
}
static void w_i64(mor_buf *b, int64_t v) { w_u64(b, (uint64_t)v); }
static void w_i32(mor_buf *b, int32_t v) { w_u32(b, (uint32_t)v); }
static void w_str(mor_buf *b, const char *s) {
  size_t n = s ? strlen(s) : 0;
  w_u32(b, (uint32_t)n);
  if (n) mor_buf_write(b, s, n);
}
static void w_launch(mor_buf *b, const morcu_launch *l) {
  w_i32(b, l->kernel);
  for (int i = 0; i < 3; i++) w_i32(b, l->grid_c[i]);
  for (int i = 0; i < 3; i++) w_i32(b, l->grid_d[i]);
  for (int i = 0; i < 3; i++) w_i32(b, l->block[i]);
  w_i32(b, l->smem);
}

void mor_cuda_write_plan(const mor_cuda_prog *p, const char *tokenizer, size_t tokenizer_len, mor_buf *b) {
  char name[200];
  mor_buf_write(b, MORCU_PLAN_MAGIC, 8);
  w_str(b, mor_cuda_comment_name(p->m->name ? p->m->name : "", name, sizeof name));
  w_str(b, p->arch);
  w_i64(b, p->vocab);
  w_i64(b, p->hidden);
  w_i64(b, p->max_pos);
  w_i64(b, p->max_tokens);
  w_i64(b, p->n_r);
  w_i64(b, p->routing);
  w_i64(b, p->whole_sequence);
  w_i64(b, p->io_bytes);
  w_i64(b, p->io_tokens);
  w_i64(b, p->io_pos);
  w_i64(b, p->arena_bytes);
  w_i64(b, (int64_t)p->weights_bytes);
  w_i64(b, p->n_cnt);
  w_i64(b, p->n_tickets);
  w_i64(b, p->n_cnt_init);
  for (int i = 0; i < 2 * p->n_cnt_init; i++) w_i64(b, p->cnt_init[i]);
  w_i64(b, p->logits_off);
  w_i64(b, p->depths_off);
  w_i64(b, p->n_w);
  for (int i = 0; i < p->n_w; i++) {
    w_str(b, mor_cuda_comment_name(p->w[i].g->name, name, sizeof name));
    w_u32(b, p->w[i].dev == MOR_BF16 ? 2 : 0);
    w_u64(b, p->w[i].off);
    w_u64(b, p->w[i].bytes);
  }
  w_i64(b, p->n_st_kv);
  for (int i = 0; i < p->n_st_kv; i++) {
    w_str(b, mor_cuda_comment_name(p->kv[i].g->name, name, sizeof name));
    w_i64(b, p->kv[i].capacity);
    w_i64(b, p->kv[i].width);
    w_i64(b, p->kv[i].g->layer);
    w_i64(b, p->kv[i].g->depth);
  }
  w_i64(b, p->n_k);
  for (int i = 0; i < p->n_k; i++) w_str(b, p->k[i].name);
  w_i64(b, p->n_labels);
  for (int i = 0; i < p->n_labels; i++) w_str(b, p->labels[i]);
  w_i64(b, p->n_steps);
  for (int i = 0; i < p->n_steps; i++) {
    const cu_step *s = &p->steps[i];
    for (int v = 0; v < MORCU_VARIANTS; v++) {
      w_launch(b, &s->var[v]);
      w_i32(b, s->max_t[v]);
    }
    w_i32(b, s->first_param);
    w_i32(b, s->n_params);
    w_i32(b, s->label);
  }
  w_i64(b, p->n_params);
  for (int i = 0; i < p->n_params; i++) {
    w_u32(b, (uint32_t)p->params[i].kind);
    w_u64(b, p->params[i].v);
  }
  size_t n = p->ptx ? strlen(p->ptx) : 0;
  w_u64(b, n);
  if (n) mor_buf_write(b, p->ptx, n);
  w_u64(b, p->cubin_size);
  if (p->cubin_size) mor_buf_write(b, p->cubin, p->cubin_size);
  w_u64(b, tokenizer ? tokenizer_len : 0);
  if (tokenizer && tokenizer_len) mor_buf_write(b, tokenizer, tokenizer_len);
}
