/* Unit tests of src/util: SHA-256 against FIPS vectors, the RNG's range and
 * reproducibility, atomic writes and whole-file reads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "glora/common.h"
#include "util/bigmem.h"
#include "util/fileio.h"
#include "util/rng.h"
#include "util/strbuf.h"

#include <cjson/cJSON.h>
#include "util/json-check.h"

static void test_sha256_vectors(void **state) {
    (void)state;
    char hex[65];
    glora_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    glora_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    glora_sha256_hex(m, strlen(m), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* One million 'a', fed in uneven pieces to exercise buffering. */
    glora_sha256_t s;
    glora_sha256_init(&s);
    char a[997];
    memset(a, 'a', sizeof a);
    size_t left = 1000000;
    for (size_t piece = 1; left > 0; piece = piece % 997 + 1) {
        size_t take = piece < left ? piece : left;
        glora_sha256_update(&s, a, take);
        left -= take;
    }
    uint8_t d[32];
    glora_sha256_final(&s, d);
    static const uint8_t want[4] = {0xcd, 0xc7, 0x6e, 0x5c};
    assert_memory_equal(d, want, 4);
}

static void test_rng(void **state) {
    (void)state;
    glora_rng_t r1, r2;
    glora_rng_seed(&r1, 42);
    glora_rng_seed(&r2, 42);
    for (int i = 0; i < 100; i++) assert_true(glora_rng_u64(&r1) == glora_rng_u64(&r2));
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) counts[glora_rng_below(&r1, 7)]++;
    for (int i = 0; i < 7; i++) assert_in_range(counts[i], 9500, 10500);
    double sum = 0, sq = 0;
    for (int i = 0; i < 100000; i++) {
        double u = glora_rng_uniform(&r1);
        assert_true(u >= 0.0 && u < 1.0);
        double z = glora_rng_normal(&r2);
        sum += z;
        sq += z * z;
    }
    assert_true(sum / 100000 > -0.02 && sum / 100000 < 0.02);
    assert_true(sq / 100000 > 0.98 && sq / 100000 < 1.02);
    uint32_t idx[50];
    for (uint32_t i = 0; i < 50; i++) idx[i] = i;
    glora_rng_shuffle(&r1, idx, 50);
    int seen[50] = {0};
    for (int i = 0; i < 50; i++) seen[idx[i]]++;
    for (int i = 0; i < 50; i++) assert_int_equal(seen[i], 1);
    glora_rng_t f1, f2, f3;
    glora_rng_fork(&r1, 1, &f1);
    glora_rng_fork(&r1, 1, &f2);
    glora_rng_fork(&r1, 2, &f3);
    uint64_t a = glora_rng_u64(&f1);
    assert_true(a == glora_rng_u64(&f2));
    assert_true(a != glora_rng_u64(&f3));
}

static void test_atomic_write_and_read(void **state) {
    (void)state;
    char dir[] = "/tmp/glora-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/sub/dir/out.bin", dir);
    char sub[256];
    snprintf(sub, sizeof sub, "%s/sub/dir", dir);
    assert_int_equal(glora_mkdir_p(sub), GLORA_OK);
    assert_int_equal(glora_write_atomic(path, "hello", 5), GLORA_OK);
    assert_int_equal(glora_write_atomic(path, "world!", 6), GLORA_OK);
    char *data;
    size_t n;
    assert_int_equal(glora_read_file(path, 100, &data, &n), GLORA_OK);
    assert_int_equal(n, 6);
    assert_string_equal(data, "world!");
    free(data);
    /* Too large for the limit: refused with the path in the message. */
    assert_int_equal(glora_read_file(path, 3, &data, &n), GLORA_EFORMAT);
    assert_non_null(strstr(glora_errmsg(), path));
    /* Aborted writes leave neither the target changed nor a temporary. */
    glora_atomic_file_t *f;
    assert_int_equal(glora_atomic_open(&f, path), GLORA_OK);
    assert_int_equal(glora_atomic_write(f, "xx", 2), GLORA_OK);
    glora_atomic_abort(f);
    assert_int_equal(glora_read_file(path, 100, &data, &n), GLORA_OK);
    assert_string_equal(data, "world!");
    free(data);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test $(ls -A %s/sub/dir | wc -l) -eq 1", dir);
    assert_int_equal(system(cmd), 0);
    /* Unwritable target directory: an error naming the path. */
    assert_true(glora_write_atomic("/nonexistent-dir/x", "a", 1) < 0);
    assert_non_null(strstr(glora_errmsg(), "/nonexistent-dir/x"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The string builder: long printf output, and JSON strings that a JSON
 * parser (cJSON) reads back to the original bytes. */
static void test_strbuf(void **state) {
    (void)state;
    sbuf_t b = {0};
    assert_null(b.buf);
    sb_puts(&b, "");
    assert_string_equal(b.buf, "");
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    sb_printf(&b, "%s|%d", big, 42);
    assert_int_equal(b.len, sizeof big - 1 + 3);
    assert_string_equal(b.buf + sizeof big - 1, "|42");
    free(b.buf);
    static const char *const texts[] = {"a\"b", "back\\slash", "tab\tnew\nline\x01\x1f", "caf\xc3\xa9", ""};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        sbuf_t j = {0};
        sb_puts(&j, "{\"k\": ");
        sb_jstr(&j, texts[i]);
        sb_puts(&j, ", \"d\": ");
        sb_double(&j, 0.1 + 0.2);
        sb_puts(&j, "}");
        assert_false(j.failed);
        cJSON *o = cJSON_Parse(j.buf);
        assert_non_null(o);
        assert_string_equal(cJSON_GetObjectItem(o, "k")->valuestring, texts[i]);
        assert_true(cJSON_GetObjectItem(o, "d")->valuedouble == 0.1 + 0.2);
        cJSON_Delete(o);
        free(j.buf);
    }
}

/* Output directory locks: a second locker (here another open of the same
 * file, which flock treats like another process) fails at once naming the
 * holder's pid; unlocking removes the lock file and frees the directory. */
static void test_dir_lock(void **state) {
    (void)state;
    char dir[] = "/tmp/glora-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    glora_dir_lock_t *a = NULL, *b = NULL;
    assert_int_equal(glora_dir_lock(&a, dir), GLORA_OK);
    assert_int_equal(glora_dir_lock(&b, dir), GLORA_ESTATE);
    assert_null(b);
    char want[64];
    snprintf(want, sizeof want, "(pid %ld)", (long)getpid());
    assert_non_null(strstr(glora_errmsg(), want));
    assert_non_null(strstr(glora_errmsg(), dir));
    /* A child process is refused too, while the parent holds it. */
    pid_t pid = fork();
    if (pid == 0) {
        glora_dir_lock_t *c;
        _exit(glora_dir_lock(&c, dir) == GLORA_ESTATE ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    glora_dir_unlock(a);
    char lock[128];
    snprintf(lock, sizeof lock, "%s/%s", dir, GLORA_LOCK_NAME);
    assert_int_equal(access(lock, F_OK), -1);
    assert_int_equal(glora_dir_lock(&b, dir), GLORA_OK);
    glora_dir_unlock(b);
    glora_dir_unlock(NULL);
    /* A lock held by a process that died is free (the kernel releases it). */
    pid = fork();
    if (pid == 0) {
        glora_dir_lock_t *c;
        if (glora_dir_lock(&c, dir) != GLORA_OK) _exit(1);
        _exit(0); /* no unlock: the lock file stays, unlocked */
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(access(lock, F_OK), 0);
    assert_int_equal(glora_dir_lock(&b, dir), GLORA_OK);
    glora_dir_unlock(b);
    /* A directory that does not exist: an error naming it. */
    assert_int_equal(glora_dir_lock(&b, "/nonexistent-dir/x"), GLORA_EIO);
    assert_non_null(strstr(glora_errmsg(), "/nonexistent-dir/x"));
    rmdir(dir);
}

static void touch(const char *dir, const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
}

static int exists(const char *dir, const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* Leftover temporaries of killed atomic writes go, nothing else does. */
static void test_clean_temps(void **state) {
    (void)state;
    char dir[] = "/tmp/glora-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[128], deep[160];
    snprintf(sub, sizeof sub, "%s/search", dir);
    snprintf(deep, sizeof deep, "%s/search/a", dir);
    assert_int_equal(glora_mkdir_p(deep), GLORA_OK);
    touch(dir, "supernet.safetensors.ckpt.tmp.Ab3xYz");
    touch(dir, "metrics.jsonl");
    touch(dir, "notes.tmp.txt");
    touch(dir, "x.tmp.ABCDE");    /* 5 letters: not mkstemp's */
    touch(dir, "x.tmp.ABCDEFG");  /* 7 */
    touch(dir, "x.tmp.AB-DEF");
    touch(sub, "checkpoint.json.tmp.q1w2e3");
    touch(deep, "too-deep.tmp.q1w2e3");
    int removed = -1;
    assert_int_equal(glora_clean_temps(dir, 1, &removed), GLORA_OK);
    assert_int_equal(removed, 2);
    assert_false(exists(dir, "supernet.safetensors.ckpt.tmp.Ab3xYz"));
    assert_false(exists(sub, "checkpoint.json.tmp.q1w2e3"));
    assert_true(exists(deep, "too-deep.tmp.q1w2e3"));
    assert_true(exists(dir, "metrics.jsonl"));
    assert_true(exists(dir, "notes.tmp.txt"));
    assert_true(exists(dir, "x.tmp.ABCDE"));
    assert_true(exists(dir, "x.tmp.ABCDEFG"));
    assert_true(exists(dir, "x.tmp.AB-DEF"));
    /* A temporary of glora_atomic_open has the pattern cleaned. */
    char path[160];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    glora_atomic_file_t *f;
    assert_int_equal(glora_atomic_open(&f, path), GLORA_OK);
    assert_int_equal(glora_clean_temps(dir, 0, &removed), GLORA_OK);
    assert_int_equal(removed, 1);
    glora_atomic_abort(f);
    /* A directory that does not exist has nothing to clean. */
    assert_int_equal(glora_clean_temps("/nonexistent-dir/x", 1, &removed), GLORA_OK);
    assert_int_equal(removed, 0);
    /* Only one output's own temporaries, in its directory only. */
    touch(dir, "out.bin.tmp.a1B2c3");
    touch(dir, "out.bin2.tmp.a1B2c3");
    touch(dir, "out.bin.tmp.a1B2c");
    touch(dir, "zout.bin.tmp.a1B2c3");
    touch(sub, "out.bin.tmp.a1B2c3");
    touch(dir, "other.tmp.a1B2c3");
    assert_int_equal(glora_clean_temps_of(path, &removed), GLORA_OK);
    assert_int_equal(removed, 1);
    assert_false(exists(dir, "out.bin.tmp.a1B2c3"));
    assert_true(exists(dir, "out.bin2.tmp.a1B2c3"));
    assert_true(exists(dir, "out.bin.tmp.a1B2c"));
    assert_true(exists(dir, "zout.bin.tmp.a1B2c3"));
    assert_true(exists(sub, "out.bin.tmp.a1B2c3"));
    assert_true(exists(dir, "other.tmp.a1B2c3"));
    assert_int_equal(glora_clean_temps_of("/nonexistent-dir/out.bin", &removed), GLORA_OK);
    assert_int_equal(removed, 0);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Named pipes, directories and devices are refused without blocking. */
static void test_open_regular(void **state) {
    (void)state;
    char dir[] = "/tmp/glora-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/pipe", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    alarm(20); /* a regression would hang here */
    char *data;
    size_t n;
    assert_int_equal(glora_read_file(fifo, 100, &data, &n), GLORA_EIO);
    assert_non_null(strstr(glora_errmsg(), "a named pipe"));
    assert_non_null(strstr(glora_errmsg(), fifo));
    char hex[65];
    assert_true(glora_sha256_file(fifo, hex) < 0);
    assert_true(glora_open_regular(dir, NULL) < 0);
    assert_non_null(strstr(glora_errmsg(), "a directory"));
    assert_true(glora_open_regular("/dev/null", NULL) < 0);
    assert_non_null(strstr(glora_errmsg(), "a device"));
    alarm(0);
    uint64_t size = 0;
    char file[128];
    snprintf(file, sizeof file, "%s/f", dir);
    assert_int_equal(glora_write_atomic(file, "abc", 3), GLORA_OK);
    int fd = glora_open_regular(file, &size);
    assert_true(fd >= 0);
    assert_int_equal(size, 3);
    assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    close(fd);
    unlink(file);
    unlink(fifo);
    rmdir(dir);
}

static void test_json_dup(void **state) {
    (void)state;
    static const struct { const char *json, *dup; } cases[] = {
        {"{\"a\": 1, \"b\": 2}", NULL},
        {"{\"a\": 1, \"a\": 2}", "a"},
        {"{\"x\": {\"A\": 1, \"B\": 2, \"A\": 3}}", "x.A"},
        {"{\"x\": [{\"k\": 1}, {\"k\": 1, \"j\": 2, \"k\": 3}]}", "x[1].k"},
        {"[[], {\"\": 1, \"\": 2}]", "[1]."},
        {"{\"x\": {\"a\": 1}, \"y\": {\"a\": 1}}", NULL}, /* same key, other objects */
        {"7", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *j = cJSON_Parse(cases[i].json);
        assert_non_null(j);
        char where[64];
        int d = glora_json_find_dup(j, where, sizeof where);
        assert_int_equal(d, cases[i].dup != NULL);
        if (d) assert_string_equal(where, cases[i].dup);
        cJSON_Delete(j);
    }
}

/* THPeligible of the mapping holding p (/proc/self/smaps), -1 if unknown. */
static int thp_eligible(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0, v = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = (unsigned long)p >= lo && (unsigned long)p < hi;
            continue;
        }
        if (in && sscanf(line, "THPeligible: %d", &v) == 1) break;
    }
    fclose(f);
    return v;
}

/* The system lets an madvise'd mapping use huge pages ("always" or
 * "madvise" selected). */
static int thp_madvise_works(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    char s[128] = "";
    if (!f) return 0;
    if (!fgets(s, sizeof s, f)) s[0] = 0;
    fclose(f);
    return strstr(s, "[always]") || strstr(s, "[madvise]");
}

static void test_big_alloc(void **state) {
    (void)state;
    /* Small: cache-line aligned, usable. */
    unsigned char *s = glora_big_alloc(100, 3);
    assert_non_null(s);
    assert_int_equal((uintptr_t)s % 64, 0);
    memset(s, 7, 300);
    free(s);
    /* Large: 2 MB aligned; zalloc zeroes memory a dirty buffer just left. */
    const size_t n = (3u << 20) / sizeof(float) + 5;
    float *d = glora_big_alloc(n, sizeof(float));
    assert_non_null(d);
    assert_int_equal((uintptr_t)d % (2u << 20), 0);
    for (size_t i = 0; i < n; i++) d[i] = 1.0f;
    free(d);
    float *z = glora_big_zalloc(n, sizeof(float));
    assert_non_null(z);
    for (size_t i = 0; i < n; i++)
        if (z[i] != 0.0f) fail_msg("glora_big_zalloc: element %zu is %g", i, z[i]);
    if (thp_madvise_works()) {
        int e = thp_eligible(z);
        if (e >= 0) assert_int_equal(e, 1);
    }
    free(z);
    /* A size that overflows is refused, not wrapped. */
    assert_null(glora_big_alloc(SIZE_MAX / 2, 3));
    assert_null(glora_big_zalloc(SIZE_MAX, SIZE_MAX));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_strbuf),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_atomic_write_and_read),
        cmocka_unit_test(test_dir_lock),
        cmocka_unit_test(test_clean_temps),
        cmocka_unit_test(test_open_regular),
        cmocka_unit_test(test_json_dup),
        cmocka_unit_test(test_big_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
