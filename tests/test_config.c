/* Unit tests of src/config: loading YAML against a schema, every kind of
 * error (with key and line), --set overrides, wildcard maps, value syntax,
 * and the canonical dump / hash / diff.  Files under tests/fixtures/config. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "glora/common.h"
#include "glora/config.h"
#include "util/fileio.h"

#define FIXTURES GLORA_SRCDIR "/tests/fixtures/config"

static const char *const kinds[] = {"vit-tiny-28", "vit-b16", NULL};
static const char *const optimizers[] = {"adamw", "sgd", NULL};

static const glora_config_key_t keys[] = {
    {"model.kind", GLORA_CFG_ENUM, "vit-tiny-28", .help = "backbone", .choices = kinds},
    {"model.path", GLORA_CFG_STRING, NULL, .help = "pretrained weights (.safetensors)"},
    {"train.lr", GLORA_CFG_NUMBER, "1e-3", .help = "peak learning rate", .min = 0, .max = 10},
    {"train.epochs", GLORA_CFG_INT, "100", .help = "epochs", .min = 1, .max = 100000},
    {"train.warmup", GLORA_CFG_BOOL, "no", .help = "warm up the learning rate"},
    {"train.optimizer", GLORA_CFG_ENUM, "adamw", .help = "optimizer", .choices = optimizers},
    {"train.name", GLORA_CFG_STRING, "run", .help = "name of the run"},
    {"search.population", GLORA_CFG_INT, "50", .help = "candidates per generation", .min = 2,
     .max = 10000},
    {"search.budget", GLORA_CFG_SIZE, "1M", .help = "most trainable parameters"},
    {"search.budgets", GLORA_CFG_SIZES, "[]", .help = "budgets to search under"},
    {"search.ranks", GLORA_CFG_INTS, "[4]", .help = "ranks offered", .min = 1, .max = 64},
    {"search.mutation", GLORA_CFG_NUMBERS, "[0.2, 0.5]", .help = "mutation probabilities",
     .min = 0, .max = 1},
    {"search.space.A", GLORA_CFG_STRINGS, "[lora_4, vector, scalar, none]",
     .help = "choices of A"},
    {"search.space.override.*.A", GLORA_CFG_STRINGS, "[none]",
     .help = "choices of A for a layer kind"},
    {"search.space.override.*.B", GLORA_CFG_STRINGS, "[none]",
     .help = "choices of B for a layer kind"},
    {"train.lr_scale.*", GLORA_CFG_NUMBER, "1", .help = "learning-rate factor per tensor"},
};
static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);

static glora_config_t *load_ok(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", FIXTURES, name);
    glora_config_t *cfg = NULL;
    int rc = glora_config_load(&cfg, path, &schema);
    if (rc) print_error("%s: %s\n", name, glora_errmsg());
    assert_int_equal(rc, GLORA_OK);
    assert_non_null(cfg);
    return cfg;
}

static void assert_msg_has(const char *want) {
    if (strstr(glora_errmsg(), want) == NULL) {
        print_error("message: %s\nwanted:  %s\n", glora_errmsg(), want);
        fail();
    }
}

/* Writes text to a fresh file in a temporary directory; returns its path. */
static char tmpdir[64];
static const char *write_tmp(const char *name, const char *text, size_t n) {
    static char path[256];
    if (tmpdir[0] == '\0') {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/glora-test-config-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
    }
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");  /* not glora_write_atomic: thousands of fsyncs are slow */
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    return path;
}

static void test_schema_check(void **state) {
    (void)state;
    assert_int_equal(glora_config_schema_check(&schema), GLORA_OK);
    static const glora_config_key_t bad_default[] = {{"a.b", GLORA_CFG_INT, "1.5", .help = ""}};
    static const glora_config_key_t clash[] = {{"a.b", GLORA_CFG_INT, "1", .help = ""},
                                               {"a.b.c", GLORA_CFG_INT, "1", .help = ""}};
    static const glora_config_key_t twice[] = {{"a.b", GLORA_CFG_INT, "1", .help = ""},
                                               {"a.b", GLORA_CFG_NUMBER, "1", .help = ""}};
    static const glora_config_key_t star_named[] = {{"a.*.x", GLORA_CFG_INT, "1", .help = ""},
                                                    {"a.b.y", GLORA_CFG_INT, "1", .help = ""}};
    static const glora_config_key_t no_choices[] = {{"a", GLORA_CFG_ENUM, "x", .help = ""}};
    static const glora_config_key_t bad_path[] = {{"a..b", GLORA_CFG_INT, "1", .help = ""}};
    static const glora_config_key_t bad_range[] = {{"a", GLORA_CFG_INT, "0", .min = 1, .max = 5}};
    static const char *const fits[] = {"accuracy", "loglik", NULL};
    static const glora_config_key_t legacy_no_flag[] = {
        {"f", GLORA_CFG_ENUM, "loglik", .choices = fits, .legacy = "accuracy"}};
    static const glora_config_key_t legacy_bad[] = {
        {"f", GLORA_CFG_ENUM, "loglik", .choices = fits, .flags = GLORA_CFG_IDENTITY_IF_SET, .legacy = "top1"}};
    static const glora_config_key_t legacy_not_canon[] = {
        {"n", GLORA_CFG_NUMBER, "2", .flags = GLORA_CFG_IDENTITY_IF_SET, .legacy = "1.0"}};
    const struct {
        glora_config_schema_t s;
        const char *want;
    } cases[] = {
        {GLORA_CONFIG_SCHEMA(bad_default),
         "config schema: default '1.5': key 'a.b' must be an integer, found '1.5'"},
        {GLORA_CONFIG_SCHEMA(clash), "key 'a.b.c': clashes"},
        {GLORA_CONFIG_SCHEMA(twice), "key 'a.b': clashes"},
        {GLORA_CONFIG_SCHEMA(star_named), "key 'a.b.y': '*' and named keys"},
        {GLORA_CONFIG_SCHEMA(no_choices), "key 'a': an enum needs choices"},
        {GLORA_CONFIG_SCHEMA(bad_path), "key 'a..b': segments"},
        {GLORA_CONFIG_SCHEMA(bad_range),
         "config schema: default '0': key 'a' must be between 1 and 5, found 0"},
        {GLORA_CONFIG_SCHEMA(legacy_no_flag), "key 'f': a legacy value needs GLORA_CFG_IDENTITY_IF_SET"},
        {GLORA_CONFIG_SCHEMA(legacy_bad), "config schema: legacy value 'top1'"},
        {GLORA_CONFIG_SCHEMA(legacy_not_canon), "key 'n': the legacy value must be written canonically"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(glora_config_schema_check(&cases[i].s), GLORA_EINVAL);
        assert_msg_has(cases[i].want);
        glora_config_t *cfg = (glora_config_t *)1;
        assert_int_equal(glora_config_load(&cfg, NULL, &cases[i].s), GLORA_EINVAL);
        assert_null(cfg);
    }
}

static void test_defaults_only(void **state) {
    (void)state;
    glora_config_t *cfg;
    assert_int_equal(glora_config_load(&cfg, NULL, &schema), GLORA_OK);
    assert_string_equal(glora_config_string(cfg, "model.kind"), "vit-tiny-28");
    assert_null(glora_config_string(cfg, "model.path"));
    assert_false(glora_config_is_set(cfg, "model.path"));
    assert_int_equal(glora_config_require(cfg, "model.path"), GLORA_EINVAL);
    assert_msg_has("key 'model.path' is required");
    assert_int_equal(glora_config_require(cfg, "train.lr"), GLORA_OK);
    assert_true(glora_config_number(cfg, "train.lr") == 1e-3);
    assert_int_equal(glora_config_int(cfg, "train.epochs"), 100);
    assert_false(glora_config_bool(cfg, "train.warmup"));
    assert_int_equal(glora_config_size(cfg, "search.budget"), 1000000);
    size_t n;
    const int64_t *ranks = glora_config_ints(cfg, "search.ranks", &n);
    assert_int_equal(n, 1);
    assert_int_equal(ranks[0], 4);
    glora_config_sizes(cfg, "search.budgets", &n);
    assert_int_equal(n, 0);
    const double *mut = glora_config_numbers(cfg, "search.mutation", &n);
    assert_int_equal(n, 2);
    assert_true(mut[0] == 0.2 && mut[1] == 0.5);
    /* A wildcard key never given reads as the pattern's default. */
    const char *const *a = glora_config_strings(cfg, "search.space.override.proj.A", &n);
    assert_int_equal(n, 1);
    assert_string_equal(a[0], "none");
    assert_true(glora_config_number(cfg, "train.lr_scale.Ad") == 1.0);
    assert_null(glora_config_map_key(cfg, "search.space.override", 0));
    glora_config_free(cfg);
    glora_config_free(NULL);
}

static void test_valid_file(void **state) {
    (void)state;
    glora_config_t *cfg = load_ok("good/run.yaml");
    assert_true(glora_config_number(cfg, "train.lr") == 1e-4);
    assert_int_equal(glora_config_int(cfg, "train.epochs"), 200);
    assert_true(glora_config_bool(cfg, "train.warmup"));
    assert_true(glora_config_is_set(cfg, "train.warmup"));
    assert_false(glora_config_is_set(cfg, "train.optimizer"));
    assert_string_equal(glora_config_string(cfg, "train.optimizer"), "adamw");
    assert_string_equal(glora_config_string(cfg, "train.name"), "run");
    assert_int_equal(glora_config_size(cfg, "search.budget"), 1500000);
    size_t n;
    const size_t *b = glora_config_sizes(cfg, "search.budgets", &n);
    assert_int_equal(n, 3);
    assert_int_equal(b[0], 100000);
    assert_int_equal(b[1], 500000);
    assert_int_equal(b[2], 300000);
    const char *const *a = glora_config_strings(cfg, "search.space.A", &n);
    assert_int_equal(n, 4);
    assert_string_equal(a[3], "none");
    glora_config_free(cfg);
    cfg = load_ok("good/empty.yaml");
    assert_int_equal(glora_config_int(cfg, "search.population"), 50);
    glora_config_free(cfg);
}

static void test_wildcard_maps(void **state) {
    (void)state;
    glora_config_t *cfg = load_ok("good/run.yaml");
    const char *m = "search.space.override";
    assert_string_equal(glora_config_map_key(cfg, m, 0), "fc1");
    assert_string_equal(glora_config_map_key(cfg, m, 1), "qkv");
    assert_null(glora_config_map_key(cfg, m, 2));
    size_t n;
    const char *const *a = glora_config_strings(cfg, "search.space.override.qkv.A", &n);
    assert_int_equal(n, 2);
    assert_string_equal(a[0], "lora_4");
    assert_string_equal(a[1], "vector");
    /* fc1 overrides only B: its A is the default of the pattern. */
    a = glora_config_strings(cfg, "search.space.override.fc1.A", &n);
    assert_int_equal(n, 1);
    assert_string_equal(a[0], "none");
    assert_int_equal(glora_config_set(cfg, "search.space.override.fc2.A=[lora_2, none]"), 0);
    assert_string_equal(glora_config_map_key(cfg, m, 1), "fc2");
    assert_string_equal(glora_config_map_key(cfg, m, 2), "qkv");
    assert_null(glora_config_map_key(cfg, m, 3));
    a = glora_config_strings(cfg, "search.space.override.fc2.A", &n);
    assert_int_equal(n, 2);
    assert_string_equal(a[0], "lora_2");
    /* A map of plain values. */
    assert_int_equal(glora_config_set(cfg, "train.lr_scale.Bu=0.5"), 0);
    assert_int_equal(glora_config_set(cfg, "train.lr_scale.Ad=2"), 0);
    assert_string_equal(glora_config_map_key(cfg, "train.lr_scale", 0), "Ad");
    assert_string_equal(glora_config_map_key(cfg, "train.lr_scale", 1), "Bu");
    assert_true(glora_config_number(cfg, "train.lr_scale.Bu") == 0.5);
    /* Checks the schema cannot express are located like the loader's. */
    assert_int_equal(glora_config_error(cfg, "search.space.override.qkv", "is not a layer kind"),
                     GLORA_EINVAL);
    assert_msg_has("good/run.yaml': line 17: key 'search.space.override.qkv' is not a layer kind");
    assert_int_equal(glora_config_error(cfg, "train.lr_scale.Bu", "is too small"), GLORA_EINVAL);
    assert_msg_has("--set 'train.lr_scale.Bu=0.5': key 'train.lr_scale.Bu' is too small");
    assert_int_equal(glora_config_error(cfg, "search.population", "is odd"), GLORA_EINVAL);
    assert_msg_has("line 9: key 'search.population' is odd");
    glora_config_free(cfg);
}

static void test_sections(void **state) {
    (void)state;
    const char *path = FIXTURES "/good/stages.yaml";
    glora_config_t *cfg;
    assert_int_equal(glora_config_load_section(&cfg, path, "finetune", &schema), GLORA_OK);
    assert_true(glora_config_number(cfg, "train.lr") == 1e-4);
    assert_int_equal(glora_config_int(cfg, "train.epochs"), 30);
    assert_int_equal(glora_config_size(cfg, "search.budget"), 500000);
    /* Lines are those of the whole file. */
    assert_int_equal(glora_config_error(cfg, "train.epochs", "is odd"), GLORA_EINVAL);
    assert_msg_has("stages.yaml': line 8: key 'train.epochs' is odd");
    glora_config_free(cfg);
    assert_int_equal(glora_config_load_section(&cfg, path, "pretrain", &schema), GLORA_OK);
    assert_int_equal(glora_config_int(cfg, "train.epochs"), 6);
    glora_config_free(cfg);
    assert_int_equal(glora_config_load_section(&cfg, path, "empty", &schema), GLORA_OK);
    assert_int_equal(glora_config_int(cfg, "train.epochs"), 100);
    glora_config_free(cfg);
    assert_int_equal(glora_config_load_section(&cfg, path, "nope", &schema), GLORA_EINVAL);
    assert_msg_has("stages.yaml': no section 'nope' at the top level "
                   "(found: pretrain, finetune, empty, listed, other)");
    assert_int_equal(glora_config_load_section(&cfg, path, "listed", &schema), GLORA_EINVAL);
    assert_msg_has("line 11: section 'listed' must be a map of keys, found a list");
    assert_int_equal(glora_config_load_section(&cfg, path, "other", &schema), GLORA_EINVAL);
    assert_msg_has("line 12: key 'not' is unknown");
    const char *text = "a:\n  train: {lr: 1}\nb: {}\na:\n  train: {lr: 2}\n";
    path = write_tmp("twice.yaml", text, strlen(text));
    assert_int_equal(glora_config_load_section(&cfg, path, "a", &schema), GLORA_EINVAL);
    assert_msg_has("line 4: section 'a' appears twice (first on line 1)");
    text = "- a\n";
    path = write_tmp("list.yaml", text, strlen(text));
    assert_int_equal(glora_config_load_section(&cfg, path, "a", &schema), GLORA_EINVAL);
    assert_msg_has("line 1: the top level must be a map of sections");
    path = write_tmp("nothing.yaml", "", 0);
    assert_int_equal(glora_config_load_section(&cfg, path, "a", &schema), GLORA_EINVAL);
    assert_msg_has("no section 'a' at the top level");
    assert_null(cfg);
}

/* Every file under bad/ is refused with a message holding its "# expect:"
 * lines. */
static void test_bad_files(void **state) {
    (void)state;
    DIR *d = opendir(FIXTURES "/bad");
    assert_non_null(d);
    struct dirent *ent;
    int cases = 0, mismatches = 0;
    while ((ent = readdir(d)) != NULL) {
        if (strstr(ent->d_name, ".yaml") == NULL) continue;
        char path[512], *text;
        size_t n;
        snprintf(path, sizeof path, "%s/bad/%s", FIXTURES, ent->d_name);
        assert_int_equal(glora_read_file(path, 1 << 20, &text, &n), GLORA_OK);
        glora_config_t *cfg = (glora_config_t *)1;
        int rc = glora_config_load(&cfg, path, &schema);
        if (rc == 0) print_error("%s: loaded, but must be refused\n", ent->d_name);
        assert_true(rc < 0);
        assert_null(cfg);
        char prefix[600];
        snprintf(prefix, sizeof prefix, "config '%s': ", path);
        if (strncmp(glora_errmsg(), prefix, strlen(prefix)) != 0) {
            print_error("%s: message does not start with the file: %s\n", ent->d_name,
                        glora_errmsg());
            fail();
        }
        int expects = 0;
        for (char *line = strstr(text, "# expect: "); line; line = strstr(line + 1, "# expect: ")) {
            char want[400];
            size_t len = strcspn(line + 10, "\n");
            snprintf(want, sizeof want, "%.*s", (int)len, line + 10);
            if (strstr(glora_errmsg(), want) == NULL) {
                print_error("%s:\n  message: %s\n  wanted:  %s\n", ent->d_name, glora_errmsg(),
                            want);
                mismatches++;
            }
            expects++;
        }
        assert_true(expects > 0);
        free(text);
        cases++;
    }
    closedir(d);
    assert_int_equal(mismatches, 0);  /* all of them listed above */
    assert_true(cases >= 30);
}

static void test_error_codes(void **state) {
    (void)state;
    glora_config_t *cfg;
    assert_int_equal(glora_config_load(&cfg, FIXTURES "/bad/syntax_indent.yaml", &schema),
                     GLORA_EFORMAT);
    assert_int_equal(glora_config_load(&cfg, FIXTURES "/bad/wrong_type.yaml", &schema),
                     GLORA_EINVAL);
    assert_true(glora_config_load(&cfg, FIXTURES "/no-such-file.yaml", &schema) < 0);
    assert_null(cfg);
    assert_msg_has("no-such-file.yaml");
    /* The unknown-key message comes with a hint for the CLI. */
    assert_int_equal(glora_config_load(&cfg, FIXTURES "/bad/unknown_key.yaml", &schema),
                     GLORA_EINVAL);
    assert_non_null(glora_errhint());
}

static void test_set(void **state) {
    (void)state;
    glora_config_t *cfg = load_ok("good/run.yaml");
    char before[65], after[65];
    assert_int_equal(glora_config_hash(cfg, before), 0);
    /* Overrides win over the file and over defaults. */
    assert_int_equal(glora_config_set(cfg, "search.population=40"), 0);
    assert_int_equal(glora_config_int(cfg, "search.population"), 40);
    assert_int_equal(glora_config_set(cfg, " train.optimizer = sgd"), 0);
    assert_string_equal(glora_config_string(cfg, "train.optimizer"), "sgd");
    assert_int_equal(glora_config_set(cfg, "search.ranks=[2, 8]"), 0);
    size_t n;
    const int64_t *r = glora_config_ints(cfg, "search.ranks", &n);
    assert_int_equal(n, 2);
    assert_int_equal(r[1], 8);
    assert_int_equal(glora_config_set(cfg, "train.name=\"a: b\""), 0);
    assert_string_equal(glora_config_string(cfg, "train.name"), "a: b");
    assert_int_equal(glora_config_set(cfg, "model.path=/data/vit=tiny.safetensors"), 0);
    assert_string_equal(glora_config_string(cfg, "model.path"), "/data/vit=tiny.safetensors");
    /* The last --set of a key wins. */
    assert_int_equal(glora_config_set(cfg, "search.population=30"), 0);
    assert_int_equal(glora_config_int(cfg, "search.population"), 30);
    assert_int_equal(glora_config_hash(cfg, after), 0);
    assert_string_not_equal(before, after);

    const struct {
        const char *set, *want;
    } bad[] = {
        {"train.lr", "--set 'train.lr': expected key=value"},
        {"=5", "--set '=5': expected key=value"},
        {"", "--set '': expected key=value"},
        {"search.populaton=40",
         "--set 'search.populaton=40': key 'search.populaton' is unknown (did you mean "
         "'search.population'?)"},
        {"nosuch=1", "--set 'nosuch=1': key 'nosuch' is unknown"},
        {"train.lr=fast", "--set 'train.lr=fast': key 'train.lr' must be a number, found 'fast'"},
        {"train.lr=", "key 'train.lr' must be a number, found nothing"},
        {"train.epochs=0", "key 'train.epochs' must be between 1 and 100000, found 0"},
        {"model.kind=vit", "key 'model.kind' must be one of: vit-tiny-28, vit-b16; found 'vit'"},
        {"search.ranks=[1, 2", "--set 'search.ranks=[1, 2': YAML syntax error"},
        {"search.ranks=3", "key 'search.ranks' must be a list of integers, found '3'"},
        {"search.ranks=[1, 100]", "key 'search.ranks' must be between 1 and 64, found 100"},
        {"train.name=a: b", "key 'train.name' must be a string, found a map"},
        {"train=5", "--set 'train=5': key 'train' is a map of keys, not a value"},
        {"search.space.override.*.A=[none]", "'search.space.override.*.A' is not a valid key"},
        {"train..lr=1", "'train..lr' is not a valid key"},
        {"train.lr=&a 1", "anchors (&a) are not supported"},
        {"train.lr=1\n---\n2", "a second YAML document"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (glora_config_set(cfg, bad[i].set) != GLORA_EINVAL &&
            strstr(glora_errmsg(), "YAML syntax error") == NULL) {
            print_error("--set '%s' accepted or wrong status\n", bad[i].set);
            fail();
        }
        assert_msg_has(bad[i].want);
    }
    /* Failed overrides leave the config as it was. */
    char again[65];
    assert_int_equal(glora_config_hash(cfg, again), 0);
    assert_string_equal(after, again);
    assert_int_equal(glora_config_int(cfg, "search.population"), 30);
    glora_config_free(cfg);
}

/* Values through --set, so each type's syntax is checked in one place. */
static int set_value(glora_config_t *cfg, const char *key, const char *value) {
    char a[256];
    snprintf(a, sizeof a, "%s=%s", key, value);
    return glora_config_set(cfg, a);
}

static void test_value_syntax(void **state) {
    (void)state;
    glora_config_t *cfg;
    assert_int_equal(glora_config_load(&cfg, NULL, &schema), GLORA_OK);
    const struct {
        const char *text;
        size_t want;
    } sizes[] = {{"500K", 500000},      {"500k", 500000},     {"1.2M", 1200000},
                 {"1.5M", 1500000},     {"300000", 300000},   {"2G", 2000000000},
                 {"1e6", 1000000},      {"0.5K", 500},        {"0", 0},
                 {"+7", 7},             {"1.25e3", 1250},     {"0.001G", 1000000},
                 {"18446744073709551615", (size_t)18446744073709551615ULL}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        assert_int_equal(set_value(cfg, "search.budget", sizes[i].text), 0);
        assert_true(glora_config_size(cfg, "search.budget") == sizes[i].want);
    }
    assert_int_equal(set_value(cfg, "search.budget", "0.000000000000000000001G"), GLORA_EINVAL);
    assert_msg_has("must be a whole number");
    assert_int_equal(set_value(cfg, "search.budget", "1e-2000"), GLORA_EINVAL);
    assert_msg_has("must be a whole number");
    assert_int_equal(set_value(cfg, "search.budget", "0e-2000"), 0);
    assert_int_equal(set_value(cfg, "search.budget", "123456789012345678901"), GLORA_EINVAL);
    assert_msg_has("is too large");
    const char *bad_sizes[] = {"1.0005K", "1.5", "-5", "5KB", "K", "1e-3",
                               "18446744073709551616", "99999999999999999999999", "1.5 M",
                               "0x10", ""};
    for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
        if (set_value(cfg, "search.budget", bad_sizes[i]) != GLORA_EINVAL) {
            print_error("size '%s' accepted\n", bad_sizes[i]);
            fail();
        }
        assert_msg_has("key 'search.budget'");
    }
    const struct {
        const char *text;
        double want;
    } nums[] = {{"1e-4", 1e-4}, {"0.001", 0.001}, {".5", 0.5}, {"5.", 5.0},
                {"3", 3.0},     {"+2E+0", 2.0},   {"0", 0.0},  {"1e-400", 0.0}};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        assert_int_equal(set_value(cfg, "train.lr", nums[i].text), 0);
        assert_true(glora_config_number(cfg, "train.lr") == nums[i].want);
    }
    const char *bad_nums[] = {"1e-4x", "", "0x10", "inf", ".inf", "nan", "1e999", "1.2.3",
                              "e5", ".", "1e", "--1", "1,5", "[1]"};
    for (size_t i = 0; i < sizeof bad_nums / sizeof bad_nums[0]; i++) {
        if (set_value(cfg, "train.lr", bad_nums[i]) != GLORA_EINVAL) {
            print_error("number '%s' accepted\n", bad_nums[i]);
            fail();
        }
        assert_msg_has("key 'train.lr'");
    }
    const char *yes[] = {"true", "True", "YES", "on"}, *no[] = {"false", "No", "OFF", "no"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(set_value(cfg, "train.warmup", yes[i]), 0);
        assert_true(glora_config_bool(cfg, "train.warmup"));
        assert_int_equal(set_value(cfg, "train.warmup", no[i]), 0);
        assert_false(glora_config_bool(cfg, "train.warmup"));
    }
    assert_int_equal(set_value(cfg, "train.warmup", "1"), GLORA_EINVAL);
    assert_int_equal(set_value(cfg, "train.warmup", "y"), GLORA_EINVAL);
    assert_int_equal(set_value(cfg, "train.epochs", "-7"), GLORA_EINVAL);  /* below min */
    assert_msg_has("between 1 and 100000, found -7");
    const char *bad_ints[] = {"4.0", "1e3", "99999999999999999999", "12a", "", "0x10"};
    for (size_t i = 0; i < sizeof bad_ints / sizeof bad_ints[0]; i++) {
        if (set_value(cfg, "train.epochs", bad_ints[i]) != GLORA_EINVAL) {
            print_error("int '%s' accepted\n", bad_ints[i]);
            fail();
        }
    }
    assert_int_equal(set_value(cfg, "search.mutation", "[0.1, 1e-2, 1]"), 0);
    assert_int_equal(set_value(cfg, "search.mutation", "[0.1, 2]"), GLORA_EINVAL);
    assert_msg_has("must be between 0 and 1, found 2");
    assert_int_equal(set_value(cfg, "search.budgets", "[1M, 0.5M]"), 0);
    size_t n;
    const size_t *b = glora_config_sizes(cfg, "search.budgets", &n);
    assert_int_equal(n, 2);
    assert_int_equal(b[1], 500000);
    assert_int_equal(set_value(cfg, "search.space.A", "[]"), 0);
    glora_config_strings(cfg, "search.space.A", &n);
    assert_int_equal(n, 0);
    glora_config_free(cfg);
}

/* Keys flagged GLORA_CFG_NOT_IDENTITY are outside the run's identity: they
 * change neither the hash nor the diff, while every other key does. */
static void test_identity_flag(void **state) {
    (void)state;
    static const glora_config_key_t keys[] = {
        {"train.lr", GLORA_CFG_NUMBER, "1e-3", "lr", 0, 0, NULL},
        {"train.val_every", GLORA_CFG_INT, "1", "how often", 1, 100, NULL, GLORA_CFG_NOT_IDENTITY},
        {"output", GLORA_CFG_STRING, NULL, "where", 0, 0, NULL, GLORA_CFG_NOT_IDENTITY},
    };
    static const glora_config_schema_t schema = GLORA_CONFIG_SCHEMA(keys);
    glora_config_t *a, *b;
    assert_int_equal(glora_config_load(&a, NULL, &schema), 0);
    assert_int_equal(glora_config_load(&b, NULL, &schema), 0);
    assert_int_equal(glora_config_set(b, "output=elsewhere.safetensors"), 0);
    assert_int_equal(glora_config_set(b, "train.val_every=10"), 0);
    char ha[65], hb[65], *summary;
    assert_int_equal(glora_config_hash(a, ha), 0);
    assert_int_equal(glora_config_hash(b, hb), 0);
    assert_string_equal(ha, hb);
    assert_int_equal(glora_config_diff(a, b, &summary), 0);
    assert_string_equal(summary, "");
    free(summary);
    assert_int_equal(glora_config_set(b, "train.lr=2e-3"), 0);
    assert_int_equal(glora_config_hash(b, hb), 0);
    assert_string_not_equal(ha, hb);
    assert_int_equal(glora_config_diff(a, b, &summary), 1);
    free(summary);
    glora_config_free(a);
    glora_config_free(b);
}

/* A key flagged GLORA_CFG_IDENTITY_IF_SET at its default leaves the hash
 * what it was before the key existed (runs written then still resume); set
 * to another value it changes it. */
static void test_identity_if_set(void **state) {
    (void)state;
    static const glora_config_key_t old_keys[] = {
        {"train.lr", GLORA_CFG_NUMBER, "1e-3", "lr", 0, 0, NULL},
    };
    static const char *const precisions[] = {"fp32", "bf16", NULL};
    static const glora_config_key_t new_keys[] = {
        {"train.lr", GLORA_CFG_NUMBER, "1e-3", "lr", 0, 0, NULL},
        {"train.precision", GLORA_CFG_ENUM, "fp32", "precision", 0, 0, precisions, GLORA_CFG_IDENTITY_IF_SET},
    };
    static const glora_config_schema_t old_schema = GLORA_CONFIG_SCHEMA(old_keys);
    static const glora_config_schema_t new_schema = GLORA_CONFIG_SCHEMA(new_keys);
    glora_config_t *a, *b;
    char ha[65], hb[65];
    assert_int_equal(glora_config_load(&a, NULL, &old_schema), 0);
    assert_int_equal(glora_config_load(&b, NULL, &new_schema), 0);
    assert_int_equal(glora_config_hash(a, ha), 0);
    assert_int_equal(glora_config_hash(b, hb), 0);
    assert_string_equal(ha, hb);
    assert_int_equal(glora_config_set(b, "train.precision=fp32"), 0);
    assert_int_equal(glora_config_hash(b, hb), 0);
    assert_string_equal(ha, hb);
    assert_int_equal(glora_config_set(b, "train.precision=bf16"), 0);
    assert_int_equal(glora_config_hash(b, hb), 0);
    assert_string_not_equal(ha, hb);
    glora_config_free(a);
    glora_config_free(b);

    /* A default changed later (search.fitness): with .legacy the key is out
     * of the hash only at the legacy value, so the old runs are still
     * recognised and the new default is another run. */
    static const char *const fits[] = {"accuracy", "loglik", NULL};
    static const glora_config_key_t changed_keys[] = {
        {"train.lr", GLORA_CFG_NUMBER, "1e-3", "lr", 0, 0, NULL},
        {"search.fitness", GLORA_CFG_ENUM, "loglik", "f", 0, 0, fits, GLORA_CFG_IDENTITY_IF_SET, "accuracy"},
    };
    static const glora_config_schema_t changed_schema = GLORA_CONFIG_SCHEMA(changed_keys);
    char hc[65];
    assert_int_equal(glora_config_load(&a, NULL, &old_schema), 0);
    assert_int_equal(glora_config_hash(a, ha), 0);
    assert_int_equal(glora_config_load(&b, NULL, &changed_schema), 0);
    assert_int_equal(glora_config_hash(b, hb), 0);
    assert_string_not_equal(ha, hb);
    assert_int_equal(glora_config_set(b, "search.fitness=accuracy"), 0);
    assert_int_equal(glora_config_hash(b, hc), 0);
    assert_string_equal(ha, hc);
    glora_config_free(a);
    glora_config_free(b);
}

static void test_hash_dump_diff(void **state) {
    (void)state;
    glora_config_t *a = load_ok("good/run.yaml");
    glora_config_t *b = load_ok("good/run_reordered.yaml");
    char ha[65], hb[65];
    assert_int_equal(glora_config_hash(a, ha), 0);
    assert_int_equal(glora_config_hash(b, hb), 0);
    assert_int_equal(strlen(ha), 64);
    assert_string_equal(ha, hb);
    char *summary;
    assert_int_equal(glora_config_diff(a, b, &summary), 0);
    assert_string_equal(summary, "");
    free(summary);

    /* Giving a default explicitly does not change the effective config. */
    assert_int_equal(glora_config_set(b, "train.optimizer=adamw"), 0);
    assert_int_equal(glora_config_hash(b, hb), 0);
    assert_string_equal(ha, hb);

    /* Any change of value does, and diff names it. */
    assert_int_equal(glora_config_set(b, "search.population=40"), 0);
    assert_int_equal(glora_config_hash(b, hb), 0);
    assert_string_not_equal(ha, hb);
    assert_int_equal(glora_config_diff(a, b, &summary), 1);
    assert_string_equal(summary, "search.population changed from 50 to 40");
    free(summary);
    assert_int_equal(glora_config_set(b, "train.lr=1e-3"), 0);
    assert_int_equal(glora_config_set(b, "search.space.override.fc2.A=[none]"), 0);
    assert_int_equal(glora_config_diff(a, b, &summary), 3);
    assert_string_equal(summary, "search.population changed from 50 to 40; "
                                 "search.space.override.fc2.A added ([none]); "
                                 "train.lr changed from 0.0001 to 0.001");
    free(summary);
    assert_int_equal(glora_config_diff(b, a, NULL), 3);

    /* Dump, load the dump: same hash, no difference. */
    assert_int_equal(glora_config_set(b, "train.name=\"odd: name, with [stuff] # and\\n\""), 0);
    char *yaml;
    assert_int_equal(glora_config_dump(b, &yaml), 0);
    assert_non_null(strstr(yaml, "search:\n"));
    assert_non_null(strstr(yaml, "  population: 40\n"));
    assert_non_null(strstr(yaml, "    override:\n      fc1:\n        B: [none]\n"));
    const char *path = write_tmp("dump.yaml", yaml, strlen(yaml));
    glora_config_t *c;
    if (glora_config_load(&c, path, &schema)) {
        print_error("%s\n---\n%s", glora_errmsg(), yaml);
        fail();
    }
    char hc[65];
    assert_int_equal(glora_config_hash(b, hb), 0);
    assert_int_equal(glora_config_hash(c, hc), 0);
    assert_string_equal(hb, hc);
    assert_int_equal(glora_config_diff(b, c, NULL), 0);
    assert_string_equal(glora_config_string(c, "train.name"), "odd: name, with [stuff] # and\n");
    /* A second dump is byte-identical: the dump is canonical. */
    char *yaml2;
    assert_int_equal(glora_config_dump(c, &yaml2), 0);
    assert_string_equal(yaml, yaml2);
    free(yaml);
    free(yaml2);
    glora_config_free(a);
    glora_config_free(b);
    glora_config_free(c);
}

static void test_dump_odd_names(void **state) {
    (void)state;
    const char *text = "search:\n  space:\n    override:\n"
                       "      \"my layer\": {B: [\"\", \"~\", null, \"x,y\", '-a']}\n"
                       "      \"null\": {A: [\"\\u00e9t\\u00e9\"]}\n";
    const char *path = write_tmp("odd.yaml", text, strlen(text));
    glora_config_t *a, *b;
    assert_int_equal(glora_config_load(&a, path, &schema), GLORA_EINVAL);
    assert_msg_has("line 4: key 'search.space.override.my layer.B' must be a list of strings, "
                   "found nothing in the list");
    text = "search:\n  space:\n    override:\n"
           "      \"my layer\": {B: [\"\", \"~\", \"x,y\", '-a', 'a\"b\\c']}\n"
           "      \"null\": {A: [\"\\u00e9t\\u00e9\"]}\n";
    path = write_tmp("odd.yaml", text, strlen(text));
    assert_int_equal(glora_config_load(&a, path, &schema), GLORA_OK);
    char *yaml;
    assert_int_equal(glora_config_dump(a, &yaml), 0);
    path = write_tmp("odd-dump.yaml", yaml, strlen(yaml));
    if (glora_config_load(&b, path, &schema)) {
        print_error("%s\n---\n%s", glora_errmsg(), yaml);
        fail();
    }
    char ha[65], hb[65];
    assert_int_equal(glora_config_hash(a, ha), 0);
    assert_int_equal(glora_config_hash(b, hb), 0);
    assert_string_equal(ha, hb);
    size_t n;
    const char *const *v = glora_config_strings(b, "search.space.override.my layer.B", &n);
    assert_int_equal(n, 5);
    assert_string_equal(v[0], "");
    assert_string_equal(v[1], "~");
    assert_string_equal(v[4], "a\"b\\c");
    v = glora_config_strings(b, "search.space.override.null.A", &n);
    assert_string_equal(v[0], "\xc3\xa9t\xc3\xa9");
    free(yaml);
    glora_config_free(a);
    glora_config_free(b);
}

/* Hostile input is refused with a message, never a crash or a hang. */
static void test_hostile(void **state) {
    (void)state;
    glora_config_t *cfg;
    size_t big = (1u << 20) + 10;
    char *text = malloc(big + 1);
    assert_non_null(text);
    /* Deep nesting, flow and block. */
    size_t n = 0;
    n += (size_t)sprintf(text, "train: {lr: ");
    for (int i = 0; i < 5000; i++) text[n++] = '[';
    text[n] = '\0';
    assert_true(glora_config_load(&cfg, write_tmp("deep.yaml", text, n), &schema) < 0);
    assert_msg_has("nesting deeper than 64 levels");
    n = 0;
    for (int i = 0; i < 100; i++) n += (size_t)sprintf(text + n, "%*sk%d:\n", i, "", i);
    assert_int_equal(glora_config_load(&cfg, write_tmp("deep2.yaml", text, n), &schema),
                     GLORA_EINVAL);
    assert_msg_has("nesting deeper than 64 levels");
    /* Too many values. */
    n = (size_t)sprintf(text, "search:\n  ranks: [");
    for (int i = 0; i < 20000; i++) n += (size_t)sprintf(text + n, "1, ");
    n += (size_t)sprintf(text + n, "1]\n");
    assert_int_equal(glora_config_load(&cfg, write_tmp("many.yaml", text, n), &schema),
                     GLORA_EINVAL);
    assert_msg_has("too many values");
    /* Too large. */
    memset(text, '#', big);
    assert_true(glora_config_load(&cfg, write_tmp("big.yaml", text, big), &schema) < 0);
    assert_null(cfg);
    assert_msg_has("big.yaml");
    /* Binary junk, a NUL byte, invalid UTF-8. */
    for (size_t i = 0; i < 4096; i++) text[i] = (char)((i * 2654435761u) >> 13);
    assert_true(glora_config_load(&cfg, write_tmp("junk.yaml", text, 4096), &schema) < 0);
    assert_true(glora_config_load(&cfg, write_tmp("nul.yaml", "train: {lr: 1\0}\n", 16),
                                  &schema) < 0);
    assert_true(glora_config_load(&cfg, write_tmp("utf8.yaml", "train: {name: \xff\xfe}\n", 18),
                                  &schema) < 0);
    assert_msg_has("YAML syntax error");
    /* Long keys and values do not overflow message buffers. */
    memset(text, 'x', 1000);
    memcpy(text + 1000, ": 1\n", 5);
    assert_int_equal(glora_config_load(&cfg, write_tmp("long.yaml", text, 1004), &schema),
                     GLORA_EINVAL);
    assert_msg_has("line 1: key 'xxxxxxxx");
    free(text);
}

/* Thousands of damaged copies of a valid file: each one loads, or is
 * refused with a message that names the file; none crashes. */
static void test_mutations(void **state) {
    (void)state;
    char *orig, *text;
    size_t n;
    assert_int_equal(glora_read_file(FIXTURES "/good/run.yaml", 1 << 20, &orig, &n), GLORA_OK);
    text = malloc(n + 64);
    assert_non_null(text);
    static const char alphabet[] = " \t\n:-[]{},#&*!|>'\"%@`.0123456789eKMx~?\\\xc3\xff";
    uint64_t r = 0x9e3779b97f4a7c15u;
    int loaded = 0, refused = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(text, orig, n);
        size_t len = n;
        for (int edits = 1 + iter % 4; edits > 0; edits--) {
            r = r * 6364136223846793005u + 1442695040888963407u;
            size_t at = (size_t)(r >> 33) % len;
            char ch = alphabet[(r >> 20) % (sizeof alphabet - 1)];
            switch ((r >> 8) % 3) {
            case 0: text[at] = ch; break;
            case 1:  /* insert */
                memmove(text + at + 1, text + at, len - at);
                text[at] = ch;
                len++;
                break;
            default:  /* delete */
                memmove(text + at, text + at + 1, len - at - 1);
                len--;
            }
        }
        const char *path = write_tmp("mutant.yaml", text, len);
        glora_config_t *cfg;
        if (glora_config_load(&cfg, path, &schema) == 0) {
            char hex[65], *yaml;
            assert_int_equal(glora_config_hash(cfg, hex), 0);
            assert_int_equal(glora_config_dump(cfg, &yaml), 0);
            free(yaml);
            glora_config_free(cfg);
            loaded++;
        } else {
            assert_null(cfg);
            assert_true(strncmp(glora_errmsg(), "config '", 8) == 0);
            refused++;
        }
    }
    assert_true(loaded > 100 && refused > 100);
    free(text);
    free(orig);
}

/* Reading a key the schema does not declare, or with the wrong getter, is a
 * bug: the process aborts. */
static void test_getter_bugs_abort(void **state) {
    (void)state;
    glora_config_t *cfg;
    assert_int_equal(glora_config_load(&cfg, NULL, &schema), GLORA_OK);
    static const char *const want[] = {
        "config key 'search.populaton' is not declared by the schema",
        "config key 'train.lr' is read with the getter of another type",
        "config key 'search.space.override.*.A' names no key",
        "config key 'search.space' is not a map of the schema with a '*' key",
        "config key 'model.path' is read with the getter of another type",
    };
    const char *errpath = write_tmp("stderr.txt", "", 0);
    for (int which = 0; which < 5; which++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (freopen(errpath, "w", stderr) == NULL) _exit(3);
            setvbuf(stderr, NULL, _IONBF, 0);  /* abort() flushes nothing */
            if (which == 0) glora_config_int(cfg, "search.populaton");
            if (which == 1) glora_config_int(cfg, "train.lr");
            if (which == 2) glora_config_number(cfg, "search.space.override.*.A");
            if (which == 3) glora_config_map_key(cfg, "search.space", 0);
            if (which == 4) glora_config_number(cfg, "model.path");
            _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
        char *err;
        size_t n;
        assert_int_equal(glora_read_file(errpath, 4096, &err, &n), GLORA_OK);
        if (strstr(err, want[which]) == NULL) {
            print_error("stderr: %s\nwanted: %s\n", err, want[which]);
            fail();
        }
        free(err);
    }
    glora_config_free(cfg);
}

static void test_help_iteration(void **state) {
    (void)state;
    char buf[200];
    int seen = 0;
    for (size_t i = 0; i < schema.nkeys; i++) {
        const glora_config_key_t *k = &schema.keys[i];
        glora_config_describe(k, buf, sizeof buf);
        if (!strcmp(k->key, "search.population")) {
            assert_string_equal(buf, "int in [2, 10000]");
            seen++;
        }
        if (!strcmp(k->key, "model.kind")) {
            assert_string_equal(buf, "one of: vit-tiny-28, vit-b16");
            seen++;
        }
        if (!strcmp(k->key, "search.budgets")) {
            assert_string_equal(buf, "list of sizes");
            seen++;
        }
    }
    assert_int_equal(seen, 3);
    assert_string_equal(glora_config_type_name(GLORA_CFG_SIZE), "size");
    glora_config_describe(&schema.keys[0], buf, 8);
    assert_int_equal(strlen(buf), 7);
}

static int cleanup(void **state) {
    (void)state;
    if (tmpdir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) return -1;
    }
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_check),
        cmocka_unit_test(test_defaults_only),
        cmocka_unit_test(test_valid_file),
        cmocka_unit_test(test_wildcard_maps),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_value_syntax),
        cmocka_unit_test(test_hash_dump_diff),
        cmocka_unit_test(test_dump_odd_names),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_getter_bugs_abort),
        cmocka_unit_test(test_help_iteration),
        cmocka_unit_test(test_identity_flag),
        cmocka_unit_test(test_identity_if_set),
    };
    return cmocka_run_group_tests(tests, NULL, cleanup);
}
