/* The search report: an SVG of a search (progress per generation; accuracy
 * vs parameters of every evaluated candidate with the Pareto front and the
 * baselines), drawn from its checkpoint. Plain C: no plotting library. */
#include "glora/common.h"
#include "util/fileio.h"
#include "glora/search.h"
#include "util/json-check.h"
#include "util/strbuf.h"
#include "search/search-impl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
                    sb_count(x, lab);
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

/* What the two panels draw. */
typedef struct {
    cJSON *cp, *bl;
    const cJSON *hist;
    point_t *pts;
    int n, max_gen;
    double pmin, pmax, amin, amax;
} report_t;

static void report_free(report_t *r) {
    free(r->pts);
    cJSON_Delete(r->cp);
    cJSON_Delete(r->bl);
}

/* The baselines: a list of objects, no key twice, params a non-negative
 * number and val_accuracy in [0, 1] where given (an infinite or NaN value
 * would put "inf" into the SVG's coordinates). */
static int check_baselines(const cJSON *bl, const char *path) {
    char dup[128];
    if (glora_json_find_dup(bl, dup, sizeof dup) > 0)
        return glora_error(GLORA_EFORMAT, "baselines '%s': key '%s' appears twice", path, dup);
    if (!cJSON_IsArray(bl)) return glora_error(GLORA_EFORMAT, "baselines '%s': not a JSON list", path);
    int i = 0;
    for (const cJSON *b = bl->child; b; b = b->next, i++) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(b, "params");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(b, "val_accuracy");
        if (!cJSON_IsObject(b))
            return glora_error(GLORA_EFORMAT, "baselines '%s': item [%d] is not an object", path, i);
        if (p && !(cJSON_IsNumber(p) && isfinite(p->valuedouble) && p->valuedouble >= 0))
            return glora_error(GLORA_EFORMAT, "baselines '%s': key '[%d].params' is not a non-negative number",
                               path, i);
        if (a && !(cJSON_IsNumber(a) && a->valuedouble >= 0 && a->valuedouble <= 1))
            return glora_error(GLORA_EFORMAT, "baselines '%s': key '[%d].val_accuracy' is not a number "
                               "from 0 to 1", path, i);
    }
    return GLORA_OK;
}

/* Candidates, history and baselines, and the ranges they span. The
 * checkpoint gets the same range checks as a resumed search's
 * (search_checkpoint_check_json), so a corrupted one is refused, naming the
 * key, instead of drawn with infinite coordinates. */
static int load(report_t *r, const char *ckpt, const char *bpath, int baselines_required) {
    r->cp = read_json(ckpt, 1);
    if (!r->cp) return GLORA_EFORMAT;
    int rc = search_checkpoint_check_json(ckpt, r->cp);
    if (rc) return rc;
    r->bl = read_json(bpath, baselines_required);
    if (!r->bl && baselines_required) return GLORA_EFORMAT;
    if (r->bl && (rc = check_baselines(r->bl, bpath))) return rc;
    const cJSON *cands = cJSON_GetObjectItem(r->cp, "candidates"), *hist = cJSON_GetObjectItem(r->cp, "history");
    r->hist = hist;
    int n = cJSON_GetArraySize(cands), ng = cJSON_GetArraySize(hist);
    if (!cJSON_IsArray(cands) || n == 0 || !cJSON_IsArray(hist) || ng == 0)
        return glora_error(GLORA_EFORMAT, "search checkpoint '%s': no evaluated candidates or history", ckpt);
    point_t *pts = r->pts = calloc((size_t)n, sizeof *pts);
    if (!pts) return glora_error(GLORA_ENOMEM, "report: out of memory");
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
    const cJSON *b, *bl = r->bl;
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
    r->n = n, r->max_gen = max_gen, r->pmin = pmin, r->pmax = pmax, r->amin = amin, r->amax = amax;
    return GLORA_OK;
}

/* Left: progress per generation. */
static void draw_progress(sbuf_t *sp, const report_t *r, double y0, double y1) {
    sbuf_t s = *sp;
    const cJSON *h, *hist = r->hist;
    int max_gen = r->max_gen;
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

    *sp = s;
}

/* Right: accuracy vs parameters, log x, the Pareto front and the baselines. */
static void draw_scatter(sbuf_t *sp, report_t *r, double y0, double y1) {
    sbuf_t s = *sp;
    point_t *pts = r->pts;
    const int n = r->n;
    const double pmin = r->pmin, pmax = r->pmax;
    const cJSON *b, *bl = r->bl;
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
        sb_printf(&s, " (%s params, val %.3f)</text>\n", sb_count(p, pbuf), acc);
        bi++;
    }
    sb_printf(&s, "<circle cx='%d' cy='%d' r='3' fill='#7f8c8d'/><text x='%d' y='%d' font-size='12'>%d candidates</text>\n",
        sc.left + 16, sc.top + 18, sc.left + 26, sc.top + 22, n);
    sb_printf(&s, "<line x1='%d' x2='%d' y1='%d' y2='%d' stroke='#c0392b' stroke-width='2'/><text x='%d' y='%d' font-size='12'>"
            "Pareto front</text>\n", sc.left + 8, sc.left + 24, sc.top + 36, sc.top + 36, sc.left + 26, sc.top + 40);
    *sp = s;
}

int glora_search_report(const char *ckpt, const char *bpath, int baselines_required, const char *opath) {
    report_t r = {0};
    int rc = load(&r, ckpt, bpath, baselines_required);
    if (rc) {
        report_free(&r);
        return rc;
    }
    double pad = fmax(0.01, (r.amax - r.amin) * 0.08);
    double y0 = fmax(0, r.amin - pad), y1 = fmin(1, r.amax + pad);
    sbuf_t s = {0};
    int nbl = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, r.bl) nbl++;
    const int W = 1100, H = 460 + (nbl > 0 ? 10 + 18 * nbl : 0);
    sb_printf(&s, "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
            "viewBox='0 0 %d %d' font-family='DejaVu Sans, Arial, sans-serif'>\n", W, H, W, H);
    sb_printf(&s, "<rect width='100%%' height='100%%' fill='#fafafa'/>\n");
    draw_progress(&s, &r, y0, y1);
    draw_scatter(&s, &r, y0, y1);
    sb_printf(&s, "</svg>\n");
    report_free(&r);
    if (s.failed) rc = glora_error(GLORA_ENOMEM, "report '%s': out of memory", opath);
    else rc = glora_write_atomic(opath, s.buf, s.len);
    free(s.buf);
    return rc;
}
