/* glora report: an SVG of a search (progress per generation; accuracy vs
 * parameters of every evaluated candidate with the Pareto front and the
 * baselines). Plain C: no plotting library. */
#include "cli/cli.h"
#include "cli/commands.h"
#include "util/strbuf.h"

#include "glora/common.h"
#include "glora/fileio.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_flag_t flags[] = {
    {"--search", NULL, "DIR", "the search's output directory (default RUN_DIR/search)"},
    {"--baselines", NULL, "FILE", "baselines JSON (default RUN_DIR/baselines.json when present)"},
    {"-o", NULL, "FILE", "SVG to write (default RUN_DIR/report.svg)"},
};

static const cli_cmd_t cmd = {
    .name = "report",
    .synopsis = "RUN_DIR [--search DIR] [--baselines FILE] [-o OUT.svg]",
    .summary = "Draws a run's search as an SVG: best and parents' mean validation accuracy per\n"
               "generation, and validation accuracy against trainable parameters for every\n"
               "evaluated candidate, with the Pareto front and the baselines marked.\n"
               "Baselines JSON: [{\"name\": \"LoRA r=4\", \"params\": 49152, \"val_accuracy\": 0.81}, ...]",
    .flags = flags,
    .n_flags = 0, /* parsed here: they take values but set no config key */
    .max_positional = 1,
};

/* Text with <, >, & escaped. */
static void put_text(sbuf_t *b, const char *s) {
    for (; *s; s++) {
        if (*s == '<') sb_printf(b, "&lt;");
        else if (*s == '>') sb_printf(b, "&gt;");
        else if (*s == '&') sb_printf(b, "&amp;");
        else sb_add(b, s, 1);
    }
}

static cJSON *read_json(const char *path, int required) {
    char *text;
    size_t n;
    if (glora_read_file(path, 512u << 20, &text, &n)) {
        if (!required) glora_error_clear();
        return NULL;
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) glora_error(GLORA_EFORMAT, "cannot read '%s': invalid JSON", path);
    return j;
}

typedef struct { double x0, x1, y0, y1; int left, top, width, height; int logx; } axes_t;

static double ax_x(const axes_t *a, double x) {
    double t = a->logx ? (log10(x) - log10(a->x0)) / (log10(a->x1) - log10(a->x0)) : (x - a->x0) / (a->x1 - a->x0);
    return a->left + t * a->width;
}
static double ax_y(const axes_t *a, double y) {
    return a->top + a->height - (y - a->y0) / (a->y1 - a->y0) * a->height;
}

/* A "nice" step for about n ticks over [lo, hi]. */
static double nice_step(double lo, double hi, int n) {
    double raw = (hi - lo) / n, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static void frame(sbuf_t *b, const axes_t *a, const char *title, const char *xlabel, const char *ylabel) {
    sb_printf(b, "<rect x='%d' y='%d' width='%d' height='%d' fill='white' stroke='#444'/>\n", a->left, a->top,
        a->width, a->height);
    sb_printf(b, "<text x='%d' y='%d' font-size='15' font-weight='bold' text-anchor='middle'>", a->left + a->width / 2,
        a->top - 12);
    put_text(b, title);
    sb_printf(b, "</text>\n<text x='%d' y='%d' font-size='13' text-anchor='middle'>", a->left + a->width / 2,
        a->top + a->height + 40);
    put_text(b, xlabel);
    sb_printf(b, "</text>\n<text x='%d' y='%d' font-size='13' text-anchor='middle' transform='rotate(-90 %d %d)'>",
        a->left - 48, a->top + a->height / 2, a->left - 48, a->top + a->height / 2);
    put_text(b, ylabel);
    sb_printf(b, "</text>\n");
    double ys = nice_step(a->y0, a->y1, 5);
    for (double y = ceil(a->y0 / ys) * ys; y <= a->y1 + 1e-12; y += ys) {
        double py = ax_y(a, y);
        sb_printf(b, "<line x1='%d' x2='%d' y1='%.1f' y2='%.1f' stroke='#ddd'/>", a->left, a->left + a->width, py, py);
        sb_printf(b, "<text x='%d' y='%.1f' font-size='11' text-anchor='end'>%.3g</text>\n", a->left - 6, py + 4, y);
    }
    if (a->logx) {
        for (double d = pow(10, floor(log10(a->x0))); d <= a->x1 * 1.0001; d *= 10) {
            for (int k = 1; k <= 9; k++) {
                double x = d * k;
                if (x < a->x0 || x > a->x1) continue;
                double px = ax_x(a, x);
                sb_printf(b, "<line x1='%.1f' x2='%.1f' y1='%d' y2='%d' stroke='%s'/>", px, px, a->top, a->top + a->height,
                    k == 1 ? "#ccc" : "#f0f0f0");
                int wide = a->x1 / a->x0 > 1000;
                if (k == 1 || (!wide && (k == 2 || k == 5))) {
                    char lab[32];
                    cli_human(x, lab);
                    sb_printf(b, "<text x='%.1f' y='%d' font-size='11' text-anchor='middle'>%s</text>\n", px,
                        a->top + a->height + 16, lab);
                }
            }
        }
    } else {
        double xs = nice_step(a->x0, a->x1, 8);
        if (xs < 1) xs = 1;
        for (double x = ceil(a->x0 / xs) * xs; x <= a->x1 + 1e-12; x += xs) {
            double px = ax_x(a, x);
            sb_printf(b, "<line x1='%.1f' x2='%.1f' y1='%d' y2='%d' stroke='#eee'/>", px, px, a->top, a->top + a->height);
            sb_printf(b, "<text x='%.1f' y='%d' font-size='11' text-anchor='middle'>%.0f</text>\n", px,
                a->top + a->height + 16, x);
        }
    }
}

typedef struct { double params, acc; int gen; } point_t;

static int by_params(const void *a, const void *b) {
    const point_t *p = a, *q = b;
    if (p->params != q->params) return p->params < q->params ? -1 : 1;
    return p->acc > q->acc ? -1 : p->acc < q->acc;
}

int glora_cmd_report(int argc, char **argv) {
    const char *run_dir = NULL, *search_dir = NULL, *baselines_path = NULL, *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_help(&cmd, stdout);
            printf("  --search DIR             %s\n  --baselines FILE         %s\n  -o FILE                  %s\n",
                   flags[0].help, flags[1].help, flags[2].help);
            return CLI_OK;
        }
        const char **slot = strcmp(a, "--search") == 0 ? &search_dir : strcmp(a, "--baselines") == 0 ? &baselines_path
                          : strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 ? &out_path : NULL;
        if (slot) {
            if (i + 1 >= argc) return cli_usage_error("report", "%s needs a value", a);
            *slot = argv[++i];
        } else if (a[0] == '-') {
            return cli_usage_error("report", "unknown option '%s'", a);
        } else if (!run_dir) {
            run_dir = a;
        } else {
            return cli_usage_error("report", "unexpected argument '%s'", a);
        }
    }
    if (!run_dir) return cli_usage_error("report", "which run? give RUN_DIR");
    char sdir[4096], ckpt[4200], bpath[4200], opath[4200];
    snprintf(sdir, sizeof sdir, "%s", search_dir ? search_dir : run_dir);
    if (!search_dir) snprintf(sdir, sizeof sdir, "%s/search", run_dir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.json", sdir);
    snprintf(bpath, sizeof bpath, "%s", baselines_path ? baselines_path : "");
    if (!baselines_path) snprintf(bpath, sizeof bpath, "%s/baselines.json", run_dir);
    snprintf(opath, sizeof opath, "%s", out_path ? out_path : "");
    if (!out_path) snprintf(opath, sizeof opath, "%s/report.svg", run_dir);

    cJSON *cp = read_json(ckpt, 1);
    if (!cp) return cli_fail();
    cJSON *bl = read_json(bpath, baselines_path != NULL);
    if (!bl && baselines_path) { cJSON_Delete(cp); return cli_fail(); }
    const cJSON *cands = cJSON_GetObjectItem(cp, "candidates"), *hist = cJSON_GetObjectItem(cp, "history");
    int n = cJSON_GetArraySize(cands), ng = cJSON_GetArraySize(hist);
    if (!cJSON_IsArray(cands) || n == 0 || !cJSON_IsArray(hist) || ng == 0) {
        glora_error(GLORA_EFORMAT, "search checkpoint '%s': no evaluated candidates or history", ckpt);
        cJSON_Delete(cp);
        cJSON_Delete(bl);
        return cli_fail();
    }
    point_t *pts = calloc((size_t)n, sizeof *pts);
    double pmin = INFINITY, pmax = 0, amin = 1, amax = 0;
    int k = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cands) {
        if (cJSON_GetArraySize(c) < 3) continue;
        pts[k].gen = cJSON_GetArrayItem(c, 0)->valueint;
        pts[k].params = cJSON_GetArrayItem(c, 1)->valuedouble;
        pts[k].acc = cJSON_GetArrayItem(c, 2)->valuedouble;
        if (pts[k].params < 1) pts[k].params = 1;
        k++;
    }
    n = k;
    for (int i = 0; i < n; i++) {
        pmin = fmin(pmin, pts[i].params); pmax = fmax(pmax, pts[i].params);
        amin = fmin(amin, pts[i].acc); amax = fmax(amax, pts[i].acc);
    }
    const cJSON *b;
    cJSON_ArrayForEach(b, bl) {
        double p = cJSON_GetNumberValue(cJSON_GetObjectItem(b, "params"));
        double acc = cJSON_GetNumberValue(cJSON_GetObjectItem(b, "val_accuracy"));
        if (!isnan(p) && p >= 1) { pmin = fmin(pmin, p); pmax = fmax(pmax, p); }
        /* (0-parameter baselines are drawn on the left edge.) */
        if (!isnan(acc)) { amin = fmin(amin, acc); amax = fmax(amax, acc); }
    }
    int max_gen = 0;
    const cJSON *h;
    cJSON_ArrayForEach(h, hist) {
        double best = cJSON_GetNumberValue(cJSON_GetObjectItem(h, "best_accuracy"));
        double mean = cJSON_GetNumberValue(cJSON_GetObjectItem(h, "parents_mean_accuracy"));
        int g = cJSON_GetObjectItem(h, "generation") ? cJSON_GetObjectItem(h, "generation")->valueint : 0;
        if (g > max_gen) max_gen = g;
        if (!isnan(best)) amax = fmax(amax, best);
        if (!isnan(mean)) amin = fmin(amin, mean);
    }
    double pad = fmax(0.01, (amax - amin) * 0.08);
    double y0 = fmax(0, amin - pad), y1 = fmin(1, amax + pad);

    sbuf_t s = {0};
    int nbl = 0;
    cJSON_ArrayForEach(b, bl) nbl++;
    const int W = 1100, H = 460 + (nbl > 0 ? 10 + 18 * nbl : 0);
    sb_printf(&s, "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
            "viewBox='0 0 %d %d' font-family='DejaVu Sans, Arial, sans-serif'>\n", W, H, W, H);
    sb_printf(&s, "<rect width='100%%' height='100%%' fill='#fafafa'/>\n");

    /* Left: progress per generation. */
    axes_t g = {0, max_gen > 0 ? max_gen : 1, y0, y1, 80, 50, 380, 330, 0};
    frame(&s, &g, "Search progress", "generation", "validation accuracy");
    const char *series[2][3] = {{"best_accuracy", "#c0392b", "best"}, {"parents_mean_accuracy", "#2471a3", "parents' mean"}};
    for (int si = 0; si < 2; si++) {
        sb_printf(&s, "<polyline fill='none' stroke='%s' stroke-width='2' points='", series[si][1]);
        cJSON_ArrayForEach(h, hist) {
            double v = cJSON_GetNumberValue(cJSON_GetObjectItem(h, series[si][0]));
            int gen = cJSON_GetObjectItem(h, "generation") ? cJSON_GetObjectItem(h, "generation")->valueint : 0;
            if (!isnan(v)) sb_printf(&s, "%.1f,%.1f ", ax_x(&g, gen), ax_y(&g, v));
        }
        sb_printf(&s, "'/>\n");
        cJSON_ArrayForEach(h, hist) {
            double v = cJSON_GetNumberValue(cJSON_GetObjectItem(h, series[si][0]));
            int gen = cJSON_GetObjectItem(h, "generation") ? cJSON_GetObjectItem(h, "generation")->valueint : 0;
            if (!isnan(v)) sb_printf(&s, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>", ax_x(&g, gen), ax_y(&g, v), series[si][1]);
        }
        sb_printf(&s, "\n<line x1='%d' x2='%d' y1='%d' y2='%d' stroke='%s' stroke-width='2'/>", g.left + 12, g.left + 34,
            g.top + 18 + 18 * si, g.top + 18 + 18 * si, series[si][1]);
        sb_printf(&s, "<text x='%d' y='%d' font-size='12'>%s</text>\n", g.left + 40, g.top + 22 + 18 * si, series[si][2]);
    }

    /* Right: accuracy vs parameters, log x. */
    double lx0 = pow(10, floor(log10(pmin))), lx1 = pow(10, ceil(log10(pmax * 1.0001)));
    if (lx1 <= lx0) lx1 = lx0 * 10;
    axes_t sc = {lx0, lx1, y0, y1, 600, 50, 460, 330, 1};
    frame(&s, &sc, "Accuracy vs trainable parameters", "trainable parameters, head excluded (log scale)", "validation accuracy");
    for (int i = 0; i < n; i++)
        sb_printf(&s, "<circle cx='%.1f' cy='%.1f' r='2.5' fill='#7f8c8d' fill-opacity='0.45'/>\n", ax_x(&sc, pts[i].params),
            ax_y(&sc, pts[i].acc));
    /* Pareto front: fewest parameters for each accuracy level. */
    qsort(pts, (size_t)n, sizeof *pts, by_params);
    sb_printf(&s, "<polyline fill='none' stroke='#c0392b' stroke-width='2' points='");
    double best = -1;
    for (int i = 0; i < n; i++)
        if (pts[i].acc > best) {
            best = pts[i].acc;
            sb_printf(&s, "%.1f,%.1f ", ax_x(&sc, pts[i].params), ax_y(&sc, pts[i].acc));
        }
    sb_printf(&s, "'/>\n");
    best = -1;
    for (int i = 0; i < n; i++)
        if (pts[i].acc > best) {
            best = pts[i].acc;
            sb_printf(&s, "<circle cx='%.1f' cy='%.1f' r='4' fill='#c0392b'/>", ax_x(&sc, pts[i].params), ax_y(&sc, pts[i].acc));
        }
    sb_printf(&s, "\n");
    int bi = 0;
    static const char *const colors[] = {"#27ae60", "#8e44ad", "#d35400", "#16a085", "#2c3e50", "#b7950b"};
    cJSON_ArrayForEach(b, bl) {
        double p = cJSON_GetNumberValue(cJSON_GetObjectItem(b, "params"));
        double acc = cJSON_GetNumberValue(cJSON_GetObjectItem(b, "val_accuracy"));
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(b, "name"));
        if (isnan(p) || isnan(acc) || !name) continue;
        const char *col = colors[bi % 6];
        /* A baseline with no trainable parameters (linear probe: head
         * only) sits on the left edge of the log axis. */
        double px = p < sc.x0 ? sc.left + 6 : ax_x(&sc, p), py = ax_y(&sc, acc);
        sb_printf(&s, "<path d='M %.1f %.1f l 6 6 l -6 6 l -6 -6 z' fill='%s' stroke='white'/>", px, py - 6, col);
        sb_printf(&s, "<text x='%d' y='%d' font-size='12' fill='%s'>&#9670; ", sc.left, sc.top + sc.height + 70 + 18 * bi, col);
        put_text(&s, name);
        char pbuf[32];
        sb_printf(&s, " (%s params, val %.3f)</text>\n", cli_human(p, pbuf), acc);
        bi++;
    }
    sb_printf(&s, "<circle cx='%d' cy='%d' r='3' fill='#7f8c8d'/><text x='%d' y='%d' font-size='12'>%d candidates</text>\n",
        sc.left + 16, sc.top + 18, sc.left + 26, sc.top + 22, n);
    sb_printf(&s, "<line x1='%d' x2='%d' y1='%d' y2='%d' stroke='#c0392b' stroke-width='2'/><text x='%d' y='%d' font-size='12'>"
            "Pareto front</text>\n", sc.left + 8, sc.left + 24, sc.top + 36, sc.top + 36, sc.left + 26, sc.top + 40);
    sb_printf(&s, "</svg>\n");
    free(pts);
    cJSON_Delete(cp);
    cJSON_Delete(bl);
    if (s.failed) { free(s.buf); glora_error(GLORA_ENOMEM, "report '%s': out of memory", opath); return cli_fail(); }
    int rc = glora_write_atomic(opath, s.buf, s.len);
    free(s.buf);
    if (rc) return cli_fail();
    fprintf(stderr, "wrote '%s'\n", opath);
    return CLI_OK;
}
