/* Internals of src/config: the YAML node tree, typed values and the config
 * object shared by the loader (config.c), the value parser (value.c) and
 * the writers (dump.c). */
#ifndef GLORA_CONFIG_IMPL_H
#define GLORA_CONFIG_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "glora/config.h"
#include "util/strbuf.h"

/* ---- YAML tree (yaml_tree.c) -------------------------------------------- */

enum { YNODE_MAP, YNODE_SEQ, YNODE_SCALAR };

/* A map holds n (key, value) pairs in keys[i], items[i]; keys are scalars.
 * A sequence holds n items.  line is 1-based.  A scalar is null (absent
 * value) when it is plain and "", "~" or "null". */
typedef struct ynode {
    int kind;
    int line;
    int null;
    char *text;
    size_t n;
    struct ynode **keys;
    struct ynode **items;
} ynode_t;

#define CFG_MAX_BYTES ((size_t)1 << 20)
#define CFG_MAX_DEPTH 64
#define CFG_MAX_NODES 10000

/* Where a piece of YAML came from, to prefix messages:
 * file != NULL -> "config '<file>': line N: ",
 * else "<label> '<assignment>': " with label "--set" when NULL. */
typedef struct {
    const char *file;
    const char *assignment;
    const char *label;
} cfg_origin_t;

/* Sets "<origin prefix><printf text>" as the thread's message; returns code. */
int cfg_fail(int code, const cfg_origin_t *o, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parses n bytes of YAML.  *out is the document's root, or NULL for a
 * stream without a document.  Syntax errors -> GLORA_EFORMAT. */
int ytree_parse(ynode_t **out, const char *buf, size_t n, const cfg_origin_t *o);
void ytree_free(ynode_t *node);

/* ---- typed values (value.c) --------------------------------------------- */

/* One value of a key.  Scalars use one of i/d/b/z/s; lists use n and the
 * array that matches the type.  canon is the canonical text (YAML flow
 * form) that dump, hash and diff compare. */
typedef struct {
    int64_t i;
    double d;
    int b;
    size_t z;
    char *s;
    size_t n;
    char **strs;
    int64_t *ints;
    double *nums;
    size_t *sizes;
    char *canon;
} cfg_value_t;

/* Converts node to a value of key's type, checking range and choices.
 * name is the concrete dotted key for messages. */
int cfg_value_from_node(cfg_value_t *v, const glora_config_key_t *key, const char *name,
                        const ynode_t *node, const cfg_origin_t *o);
void cfg_value_clear(cfg_value_t *v);

/* Appends s to b as a YAML scalar, quoted when needed. */
void cfg_buf_scalar(sbuf_t *b, const char *s);

/* Edit distance, capped at 100, for "did you mean". */
size_t cfg_distance(const char *a, const char *b);

/* ---- the config object (config.c) --------------------------------------- */

typedef struct {
    char *key;                     /* concrete dotted path */
    char *segs;                    /* the same with each '.' replaced by NUL */
    const glora_config_key_t *spec;
    cfg_value_t v;
    int line;                      /* line in the file; 0 when from --set */
    char *assignment;              /* the --set text, or NULL */
} cfg_entry_t;

struct glora_config {
    const glora_config_schema_t *schema;
    char *file;
    cfg_entry_t *e;                /* given values, sorted by cfg_keycmp */
    size_t n, cap;
    cfg_value_t *defaults;         /* one per schema key */
    int *has_default;
};

/* Orders dotted keys segment by segment, so that the keys of one map are
 * contiguous and maps come out sorted. */
int cfg_keycmp(const char *a, const char *b);

/* Effective (key, canonical text) pairs in cfg_keycmp order: every given
 * value, plus the default of every non-wildcard key that was not given.
 * The strings belong to cfg; the array is malloc'd. */
typedef struct {
    const char *key;
    const char *canon;
    const glora_config_key_t *spec;
} cfg_pair_t;
int cfg_effective(const glora_config_t *cfg, cfg_pair_t **out, size_t *n);

#endif
