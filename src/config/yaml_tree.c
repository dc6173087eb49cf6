/* YAML text -> tree of map / sequence / scalar nodes with their lines.
 *
 * Built from libyaml's event stream rather than its document loader so that
 * anchors, aliases and tags can be refused where they appear (an alias would
 * let a small file expand into a huge tree) and so that nesting depth and
 * node count are bounded before anything is allocated for them. */
#include "config/config-impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "glora/common.h"

typedef struct {
    yaml_parser_t parser;
    const cfg_origin_t *o;
    size_t nodes;
} ctx_t;

int cfg_fail(int code, const cfg_origin_t *o, int line, const char *fmt, ...) {
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (o->file == NULL)
        return glora_error(code, "%s '%s': %s", o->label ? o->label : "--set",
                           o->assignment ? o->assignment : "", why);
    if (line > 0) return glora_error(code, "config '%s': line %d: %s", o->file, line, why);
    return glora_error(code, "config '%s': %s", o->file, why);
}

static int syntax_error(ctx_t *c) {
    const yaml_parser_t *p = &c->parser;
    if (p->error == YAML_MEMORY_ERROR) return glora_error(GLORA_ENOMEM, "out of memory");
    const char *problem = p->problem ? p->problem : "malformed YAML";
    char where[160] = "";
    if (p->error == YAML_READER_ERROR) {
        return cfg_fail(GLORA_EFORMAT, c->o, 0, "YAML syntax error at byte %zu: %s",
                        p->problem_offset, problem);
    }
    if (p->context)
        snprintf(where, sizeof where, " (%s that starts on line %zu)", p->context,
                 p->context_mark.line + 1);
    int line = (int)p->problem_mark.line + 1;
    int col = (int)p->problem_mark.column + 1;
    if (c->o->file)
        return glora_error(GLORA_EFORMAT,
                           "config '%s': line %d, column %d: YAML syntax error: %s%s",
                           c->o->file, line, col, problem, where);
    return glora_error(GLORA_EFORMAT, "%s '%s': YAML syntax error at column %d: %s%s",
                       c->o->label ? c->o->label : "--set", c->o->assignment, col, problem,
                       where);
}

static int next_event(ctx_t *c, yaml_event_t *ev) {
    if (!yaml_parser_parse(&c->parser, ev)) return syntax_error(c);
    return 0;
}

void ytree_free(ynode_t *node) {
    if (node == NULL) return;
    for (size_t i = 0; i < node->n; i++) {
        if (node->keys) ytree_free(node->keys[i]);
        ytree_free(node->items[i]);
    }
    free(node->keys);
    free(node->items);
    free(node->text);
    free(node);
}

static int check_plain(ctx_t *c, const yaml_event_t *ev, const yaml_char_t *anchor,
                       const yaml_char_t *tag) {
    int line = (int)ev->start_mark.line + 1;
    if (anchor)
        return cfg_fail(GLORA_EINVAL, c->o, line, "anchors (&%s) are not supported", anchor);
    if (tag) return cfg_fail(GLORA_EINVAL, c->o, line, "tags (%s) are not supported", tag);
    return 0;
}

static int new_node(ctx_t *c, int kind, const yaml_event_t *ev, ynode_t **out) {
    if (++c->nodes > CFG_MAX_NODES)
        return cfg_fail(GLORA_EINVAL, c->o, (int)ev->start_mark.line + 1,
                        "too many values (a config holds at most %d)", CFG_MAX_NODES);
    ynode_t *nd = calloc(1, sizeof *nd);
    if (nd == NULL) return glora_error(GLORA_ENOMEM, "out of memory");
    nd->kind = kind;
    nd->line = (int)ev->start_mark.line + 1;
    *out = nd;
    return 0;
}

/* Makes room for one more child of node. */
static int grow(ynode_t *node, size_t *cap) {
    if (node->n < *cap) return 0;
    size_t ncap = *cap ? 2 * *cap : 4, bytes;
    if (glora_size_mul(ncap, sizeof(ynode_t *), &bytes))
        return glora_error(GLORA_ENOMEM, "out of memory");
    ynode_t **items = realloc(node->items, bytes);
    if (items == NULL) return glora_error(GLORA_ENOMEM, "out of memory");
    node->items = items;
    if (node->kind == YNODE_MAP) {
        ynode_t **keys = realloc(node->keys, bytes);
        if (keys == NULL) return glora_error(GLORA_ENOMEM, "out of memory");
        node->keys = keys;
    }
    *cap = ncap;
    return 0;
}

/* Builds the node that starts with event ev (which this function deletes)
 * into *out.  On failure *out may hold a partial node for the caller to free. */
static int parse_node(ctx_t *c, yaml_event_t *ev, int depth, ynode_t **out) {
    int rc = 0;
    int line = (int)ev->start_mark.line + 1;
    *out = NULL;
    if (depth > CFG_MAX_DEPTH) {
        rc = cfg_fail(GLORA_EINVAL, c->o, line, "nesting deeper than %d levels",
                      CFG_MAX_DEPTH);
        goto done;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        rc = cfg_fail(GLORA_EINVAL, c->o, line, "aliases (*%s) are not supported",
                      ev->data.alias.anchor);
        break;
    case YAML_SCALAR_EVENT: {
        const char *text = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        if ((rc = check_plain(c, ev, ev->data.scalar.anchor, ev->data.scalar.tag))) break;
        if (memchr(text, '\0', len)) {
            rc = cfg_fail(GLORA_EINVAL, c->o, line, "a value contains a NUL character");
            break;
        }
        if ((rc = new_node(c, YNODE_SCALAR, ev, out))) break;
        if (((*out)->text = strdup(text)) == NULL) {
            rc = glora_error(GLORA_ENOMEM, "out of memory");
            break;
        }
        (*out)->null = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                       (len == 0 || !strcmp(text, "~") || !strcmp(text, "null") ||
                        !strcmp(text, "Null") || !strcmp(text, "NULL"));
        break;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int map = ev->type == YAML_MAPPING_START_EVENT;
        rc = map ? check_plain(c, ev, ev->data.mapping_start.anchor, ev->data.mapping_start.tag)
                 : check_plain(c, ev, ev->data.sequence_start.anchor,
                               ev->data.sequence_start.tag);
        if (rc || (rc = new_node(c, map ? YNODE_MAP : YNODE_SEQ, ev, out))) break;
        ynode_t *node = *out;
        size_t cap = 0;
        yaml_event_type_t end = map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
        for (;;) {
            yaml_event_t child;
            if ((rc = next_event(c, &child))) break;
            if (child.type == end) {
                yaml_event_delete(&child);
                break;
            }
            if ((rc = grow(node, &cap))) {
                yaml_event_delete(&child);
                break;
            }
            ynode_t *key = NULL;
            if (map) {
                rc = parse_node(c, &child, depth + 1, &key);
                node->keys[node->n] = key;
                node->items[node->n] = NULL;
                node->n++;
                if (rc) break;
                if (key->kind != YNODE_SCALAR) {
                    rc = cfg_fail(GLORA_EINVAL, c->o, key->line, "a key must be plain text, "
                                  "not a list or map");
                    break;
                }
                if ((rc = next_event(c, &child))) break;
                rc = parse_node(c, &child, depth + 1, &node->items[node->n - 1]);
            } else {
                rc = parse_node(c, &child, depth + 1, &node->items[node->n]);
                node->n++;
            }
            if (rc) break;
        }
        break;
    }
    default:
        rc = cfg_fail(GLORA_EFORMAT, c->o, line, "unexpected YAML event");
        break;
    }
done:
    yaml_event_delete(ev);
    return rc;
}

/* Reads the next event and checks it is of the wanted type. */
static int expect(ctx_t *c, yaml_event_type_t type, yaml_event_t *ev) {
    int rc = next_event(c, ev);
    if (rc) return rc;
    if (ev->type != type) {
        int line = (int)ev->start_mark.line + 1;
        yaml_event_delete(ev);
        return cfg_fail(GLORA_EFORMAT, c->o, line, "unexpected YAML structure");
    }
    return 0;
}

int ytree_parse(ynode_t **out, const char *buf, size_t n, const cfg_origin_t *o) {
    ctx_t c = {.o = o};
    yaml_event_t ev;
    ynode_t *root = NULL;
    int rc;
    *out = NULL;
    if (!yaml_parser_initialize(&c.parser)) return glora_error(GLORA_ENOMEM, "out of memory");
    yaml_parser_set_input_string(&c.parser, (const unsigned char *)buf, n);
    if ((rc = expect(&c, YAML_STREAM_START_EVENT, &ev))) goto out;
    yaml_event_delete(&ev);
    if ((rc = next_event(&c, &ev))) goto out;
    if (ev.type == YAML_STREAM_END_EVENT) {  /* empty or comments only */
        yaml_event_delete(&ev);
        goto out;
    }
    yaml_event_delete(&ev);  /* DOCUMENT_START */
    if ((rc = next_event(&c, &ev))) goto out;
    if ((rc = parse_node(&c, &ev, 1, &root))) goto out;
    if ((rc = expect(&c, YAML_DOCUMENT_END_EVENT, &ev))) goto out;
    yaml_event_delete(&ev);
    if ((rc = next_event(&c, &ev))) goto out;
    if (ev.type != YAML_STREAM_END_EVENT) {
        int line = (int)ev.start_mark.line + 1;
        yaml_event_delete(&ev);
        rc = cfg_fail(GLORA_EINVAL, o, line, "a second YAML document starts here; "
                      "a config holds exactly one");
        goto out;
    }
    yaml_event_delete(&ev);
out:
    yaml_parser_delete(&c.parser);
    if (rc) {
        ytree_free(root);
        return rc;
    }
    *out = root;
    return 0;
}
