/*
 * glora/config.h - run configurations: a YAML file checked against a schema,
 * plus "--set key=value" overrides from the command line.
 *
 * Each command declares the keys it reads as a static table:
 *
 *     static const char *const kinds[] = {"vit-tiny-28", "vit-b16", NULL};
 *     static const glora_config_key_t keys[] = {
 *         {"model.kind", GLORA_CFG_ENUM, "vit-tiny-28", .help = "backbone",
 *          .choices = kinds},
 *         {"train.lr", GLORA_CFG_NUMBER, "1e-3", .help = "peak learning rate",
 *          .min = 0, .max = 10},
 *         {"search.population", GLORA_CFG_INT, "50", .help = "candidates per generation",
 *          .min = 2, .max = 100000},
 *         {"search.budget", GLORA_CFG_SIZE, "1.5M", .help = "most trainable parameters"},
 *         {"search.space.override.*.A", GLORA_CFG_STRINGS, "[]",
 *          .help = "choices of A for one layer kind"},
 *     };
 *     static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);
 *
 *     glora_config_t *cfg;
 *     if (glora_config_load(&cfg, "run.yaml", &schema) < 0 ||
 *         glora_config_set(cfg, "train.lr=1e-4") < 0) ... glora_errmsg() ...
 *     double lr = glora_config_number(cfg, "train.lr");
 *     for (size_t i = 0; (kind = glora_config_map_key(cfg,
 *              "search.space.override", i)) != NULL; i++) ...
 *     glora_config_free(cfg);
 *
 * Keys are dotted paths; a "*" segment stands for any one key the user
 * chooses (a "map of X").  Unknown keys, wrong types, out-of-range values,
 * duplicate keys and YAML syntax errors are errors whose message names the
 * file, the line and the key:
 *     config 'run.yaml': line 7: key 'train.lr' must be a number, found 'fast'
 * Overrides name the assignment instead of a line:
 *     --set 'train.lr=fast': key 'train.lr' must be a number, found 'fast'
 *
 * Getters return the value given in the file or by --set, else the schema
 * default.  Asking for a key the schema does not declare, or with the getter
 * of another type, is a bug: it aborts, naming the key.  Every returned
 * pointer is owned by the config and lives until glora_config_free or a
 * glora_config_set of the same key (so apply overrides before reading).
 *
 * The YAML accepted: one document whose top level is a map (an empty file is
 * all defaults); anchors, aliases and tags are refused; at most 1 MiB, 64
 * levels of nesting and 10000 nodes.  docs/config.md has the details.
 */
#ifndef GLORA_CONFIG_H
#define GLORA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GLORA_CFG_INT = 1, /* whole number (int64), e.g. 50 */
    GLORA_CFG_NUMBER,  /* double, e.g. 1e-4, 0.001 */
    GLORA_CFG_BOOL,    /* true/false, yes/no, on/off (any case) */
    GLORA_CFG_STRING,  /* any text */
    GLORA_CFG_ENUM,    /* one of .choices */
    GLORA_CFG_SIZE,    /* count, with optional K/M/G suffix: 300000, 500K, 1.5M */
    GLORA_CFG_STRINGS, /* list of strings, e.g. [lora_4, vector]; each one of
                          .choices when .choices is set */
    GLORA_CFG_INTS,    /* list of ints, e.g. [1, 2, 4] */
    GLORA_CFG_NUMBERS, /* list of numbers */
    GLORA_CFG_SIZES,   /* list of sizes, e.g. [100K, 500K, 1.5M] */
} glora_config_type_t;

/* One key of a schema.  def is the default written as it would be in the
 * YAML file ("1e-3", "yes", "[a, b]"); NULL means no default: the key is
 * unset until given (see glora_config_is_set / glora_config_require).
 * min/max bound ints, numbers, sizes and the elements of their lists,
 * inclusively; they are checked only when min < max, so leaving both 0
 * means unbounded.  choices is a NULL-terminated list of allowed values for
 * ENUM (required) and STRINGS (optional).  flags: GLORA_CFG_NOT_IDENTITY for
 * a key that says where files go or how often to report (output paths,
 * train.val_every, run.stop_after) rather than what the run computes: it is
 * left out of the run's identity (glora_config_hash, glora_config_diff), so
 * a --resume accepts a config that differs only there.
 * GLORA_CFG_IDENTITY_IF_SET for a key added after runs were written without
 * it (train.precision, search.precision): at its default it is left out of
 * the identity too, so such a run still resumes; any other value is part of
 * it.  legacy, for such a key whose default later changed (search.fitness):
 * the value the earlier runs computed with, written as the key canonically
 * reads (an enum's choice); the key is then left out of the identity only at
 * that value, so an earlier run is still recognised and a new run at the new
 * default is not taken for it.  Write entries as
 * {key, type, default, .help = ..., .min = ..., ...}: naming the fields after
 * the default keeps -Wextra quiet about the ones left out. */
typedef struct {
    const char *key;
    glora_config_type_t type;
    const char *def;
    const char *help;
    double min, max;
    const char *const *choices;
    unsigned flags;
    const char *legacy;
} glora_config_key_t;

#define GLORA_CFG_NOT_IDENTITY 1u
#define GLORA_CFG_IDENTITY_IF_SET 2u

typedef struct {
    const glora_config_key_t *keys;
    size_t nkeys;
} glora_config_schema_t;

#define GLORA_CONFIG_SCHEMA(keys_array) \
    { (keys_array), sizeof(keys_array) / sizeof((keys_array)[0]) }

typedef struct glora_config glora_config_t;

/* Checks a schema for defects (malformed key paths, a key that is also a
 * map of other keys, a "*" beside named keys, defaults that do not parse,
 * enums without choices).  Returns 0, or GLORA_EINVAL with a message naming
 * the key.  glora_config_load runs it too; commands' tests should call it. */
int glora_config_schema_check(const glora_config_schema_t *schema);

/* Reads the YAML file at path (NULL: no file, defaults only) and checks it
 * against schema, which must outlive the config.  On success *out owns a
 * new config; on failure *out is NULL and the message names file, line and
 * key.  GLORA_EFORMAT for YAML syntax errors, GLORA_EIO when the file
 * cannot be read, GLORA_EINVAL for everything the schema refuses. */
int glora_config_load(glora_config_t **out, const char *path,
                      const glora_config_schema_t *schema);

/* The same for one section of a larger file: only the map under the
 * top-level key `section` (written nested, "section:\n  key: ...") is read
 * and checked; the file's other top-level keys are ignored. Lets one YAML
 * file hold the configs of several commands (glora run). Line numbers in
 * messages are those of the whole file. */
int glora_config_load_section(glora_config_t **out, const char *path, const char *section,
                              const glora_config_schema_t *schema);

/* Applies one "key=value" override; value is a YAML flow scalar or a flow
 * sequence ("[a, b]").  It replaces what the file said.  On failure the
 * config is unchanged and the message starts with "--set '<assignment>'". */
int glora_config_set(glora_config_t *cfg, const char *assignment);

/* Sets the string key (declared STRING by the schema; anything else is a
 * bug) to value as it is, without parsing it as YAML: for programs that fill
 * in paths (glora run). Like an override, it replaces what the file said.
 * 0 or GLORA_ENOMEM. */
int glora_config_set_string(glora_config_t *cfg, const char *key, const char *value);

/* NULL-safe. */
void glora_config_free(glora_config_t *cfg);

/* Typed getters (see above for ownership and bugs).  STRING and ENUM keys
 * both read with glora_config_string, which returns NULL for an unset key
 * without default.  List getters store the length in *n; an unset list
 * without default is empty. */
int64_t glora_config_int(const glora_config_t *cfg, const char *key);
double glora_config_number(const glora_config_t *cfg, const char *key);
bool glora_config_bool(const glora_config_t *cfg, const char *key);
const char *glora_config_string(const glora_config_t *cfg, const char *key);
size_t glora_config_size(const glora_config_t *cfg, const char *key);
const char *const *glora_config_strings(const glora_config_t *cfg, const char *key,
                                        size_t *n);
const int64_t *glora_config_ints(const glora_config_t *cfg, const char *key, size_t *n);
const double *glora_config_numbers(const glora_config_t *cfg, const char *key,
                                   size_t *n);
const size_t *glora_config_sizes(const glora_config_t *cfg, const char *key, size_t *n);

/* True when the schema declares key (a concrete key: no '*'). Lets code
 * shared by several commands read the keys a command has and skip the rest. */
bool glora_config_has(const glora_config_t *cfg, const char *key);

/* True when the key was given in the file or by --set (not a default). */
bool glora_config_is_set(const glora_config_t *cfg, const char *key);

/* 0 when the key has a value (given or default); else GLORA_EINVAL with
 * "config '<file>': key '<key>' is required (...)". */
int glora_config_require(const glora_config_t *cfg, const char *key);

/* The i-th key (sorted) given under a wildcard map, or NULL past the end:
 * with keys "search.space.override.*.A" and a file overriding qkv and fc1,
 * map "search.space.override" yields "fc1", "qkv", NULL.  map must be a
 * wildcard map of the schema. */
const char *glora_config_map_key(const glora_config_t *cfg, const char *map, size_t i);

/* For checks the schema cannot express: sets a message located like the
 * loader's own ("config 'run.yaml': line 12: key 'k' <printf text>" or
 * "--set 'k=v': key 'k' ...") and returns GLORA_EINVAL. */
int glora_config_error(const glora_config_t *cfg, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the effective configuration (defaults filled in, overrides applied,
 * keys sorted) as YAML to a malloc'd string *yaml_out; loading it again with
 * the same schema gives the same values and hash. 0 or GLORA_ENOMEM. */
int glora_config_dump(const glora_config_t *cfg, char **yaml_out);

/* The run's identity: SHA-256 (hex) of the effective values of every key
 * but those flagged GLORA_CFG_NOT_IDENTITY, in canonical form: independent
 * of key order, of spelling (1e-3 vs 0.001, 500K vs 500000) and of whether a
 * value came from a default, the file or --set.  Adding a key with a
 * default to the schema changes every hash.  Every --resume (training
 * checkpoints, the search) compares this one hash.  0 or GLORA_ENOMEM. */
int glora_config_hash(const glora_config_t *cfg, char hex[65]);

/* Compares effective values of the identity keys (those of
 * glora_config_hash): returns how many keys differ between old and
 * new_ (or GLORA_ENOMEM), and when summary is not NULL stores a malloc'd
 * text such as "search.population changed from 50 to 40; train.lr changed
 * from 0.001 to 0.0001" ("" when none).  Both must share one schema. */
int glora_config_diff(const glora_config_t *old, const glora_config_t *new_,
                      char **summary);

/* For help output: the name of a type ("int", "list of sizes", ...) and a
 * one-line description of what a key accepts ("int in [2, 100000]",
 * "one of: vit-tiny-28, vit-b16"), truncated to fit buf. */
const char *glora_config_type_name(glora_config_type_t type);
void glora_config_describe(const glora_config_key_t *key, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
