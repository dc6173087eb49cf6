/* A scratch directory for one cmocka test program: created by
 * tmpdir_setup, removed with its contents by tmpdir_teardown (pass both to
 * cmocka_run_group_tests). */
#ifndef GLORA_TESTS_TMPDIR_H
#define GLORA_TESTS_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

static char tmpdir[64];

static int tmpdir_setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/glora-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int tmpdir_teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd);
}

#endif
