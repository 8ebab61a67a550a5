/* cli.h: parsing and checking of command-line values shared by the morc
 * driver (token lists, chunk sizes). Kept apart so the fuzzers reach it. */
#ifndef MOR_CLI_H
#define MOR_CLI_H
#include <stddef.h>
#include <stdint.h>
#include "ir/util.h"

/* "1,2,3" -> integers (>= 0). Spaces around commas are allowed. */
int mor_cli_parse_ints(const char *s, const char *what, int64_t **out, size_t *n, mor_err *e);
/* Each chunk >= 1 and the sizes add up to ntokens. */
int mor_cli_check_chunks(const int64_t *chunks, size_t nc, size_t ntokens, mor_err *e);
/* Every id < vocab, and the positions 0..n-1 fit in max_pos. */
int mor_cli_check_tokens(const int64_t *toks, size_t n, int64_t vocab, int64_t max_pos, mor_err *e);
/* A memory size: a number (decimals allowed) with an optional unit K, M, G
 * or T (powers of 1024; "G", "GB" and "GiB" alike; none: bytes), > 0. */
int mor_cli_parse_size(const char *s, const char *what, uint64_t *bytes, mor_err *e);
#endif
