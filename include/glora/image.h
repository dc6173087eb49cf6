/*
 * glora/image.h - image files as model input: JPEG/PNG decoding, PIL's
 * resampling, VTAB-1k / NOAH list files, torchvision ImageFolder trees,
 * decoded 8-bit splits (cached on disk, or streamed in chunks) and the
 * per-batch normalisation.
 *
 * Pixels are the ones a PyTorch user's model sees after
 *   Image.open(p).convert('RGB' or 'L') -> torchvision Resize/CenterCrop
 *   -> ToTensor -> Normalize
 * with these documented differences:
 *   - 16-bit PNGs are scaled to 8 bits, v8 = round(v16 * 255 / 65535).
 *     PIL keeps the high byte of 16-bit RGB(A) and clips 16-bit grey to
 *     0..255 (nearly everything becomes 255), which is a PIL defect.
 *   - CMYK JPEGs are refused (PIL would convert them).
 *   - EXIF orientation is ignored, as PIL does unless the user calls
 *     ImageOps.exif_transpose: a portrait photo stored sideways stays
 *     sideways.
 * Decoding: JPEG through libjpeg(-turbo) with its defaults (islow IDCT,
 * fancy upsampling: PIL's defaults, so identical pixels); PNG through libpng:
 * grey 1/2/4/8 bits (low depths scaled as PIL does), grey+alpha, RGB, RGBA,
 * palette (tRNS or not); alpha is dropped as convert('RGB') does (no
 * compositing). A grey image fed to a 3-channel model is repeated to RGB; an
 * RGB image fed to a 1-channel model goes through PIL's convert('L'):
 * L = (19595 R + 38470 G + 7471 B + 32768) >> 16 (ITU-R 601-2 luma).
 *
 * Images are kept as bytes, planar: c x h x w per image (CHW), the layout of
 * glora's float tensors.
 */
#ifndef GLORA_IMAGE_H
#define GLORA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Images larger than this many pixels (w * h) are refused before any
 * allocation: 2^28, a 16384 x 16384 image. */
#define GLORA_IMAGE_MAX_PIXELS ((size_t)1 << 28)

/* An 8-bit image, c planes of h rows of w bytes. */
typedef struct {
    int c, h, w;    /* c is 1 (grey) or 3 (RGB) */
    uint8_t *px;    /* c * h * w bytes */
} glora_image_t;

/* Frees px and zeroes *img; NULL-safe. */
void glora_image_free(glora_image_t *img);

/* Decodes a JPEG or PNG file (recognised by its first bytes, not its name)
 * into *img: c = 1 for grey (with or without alpha), 3 otherwise. A
 * truncated or corrupt file, an unknown format or dimensions over
 * GLORA_IMAGE_MAX_PIXELS is an error naming the file. */
int glora_image_decode(glora_image_t *img, const char *path);
/* The same from n bytes in memory; name is used in messages only. */
int glora_image_decode_mem(glora_image_t *img, const void *data, size_t n, const char *name);

/* Writes img (c 1 or 3) to path, atomically: PNG (8-bit grey or RGB,
 * lossless) when the name ends in .png, JPEG (libjpeg defaults, 4:2:0,
 * quality 1..100) for .jpg / .jpeg. */
int glora_image_write(const char *path, const glora_image_t *img, int quality);

/* Converts *img in place to c channels (1 or 3) as PIL's convert('L') /
 * convert('RGB') would. */
int glora_image_convert(glora_image_t *img, int c);

typedef enum {
    GLORA_INTERP_NEAREST = 0,
    GLORA_INTERP_BILINEAR = 1,
    GLORA_INTERP_BICUBIC = 2,
} glora_interp_t;

/* Resizes in to w x h into *out (a new image) exactly as PIL's
 * Image.resize(size=(w, h), resample) does on an 8-bit image: for bilinear
 * and bicubic (a = -0.5) a separable filter whose support widens by the
 * scale when shrinking (anti-aliasing), coefficients rounded to 22-bit
 * fixed point, the horizontal pass first, each pass rounded to 8 bits;
 * for nearest, PIL's affine nearest-neighbour sampling. Same size: a copy. */
int glora_image_resize(glora_image_t *out, const glora_image_t *in, int w, int h,
                       glora_interp_t interp);

/* Copies the w x h window at (left, top) of in into *out; the window must
 * lie inside in. */
int glora_image_crop(glora_image_t *out, const glora_image_t *in, int left, int top,
                     int w, int h);

typedef enum {
    GLORA_RESIZE_SQUASH = 0,   /* both sides to size: Resize((size, size)) */
    GLORA_RESIZE_SHORTER = 1,  /* Resize(floor(size / crop_pct)), CenterCrop(size) */
    GLORA_RESIZE_NO = 2,       /* the image must already be size x size */
} glora_resize_t;

/* How a file becomes a model input. */
typedef struct {
    int channels;              /* 1 or 3: the model's input channels; 0: each
                                  image's own (grey 1, colour 3); a split
                                  decoded with 0 is 1-channel when every
                                  image is grey, else 3 (grey repeated) */
    int size;                  /* the model's image side */
    glora_resize_t resize;
    glora_interp_t interp;
    double crop_pct;           /* shorter only; 0 < crop_pct <= 1 */
} glora_image_prep_t;

/* Parses "squash" | "shorter" | "no", and "bicubic" | "bilinear" |
 * "nearest"; -1 for anything else. Names of the values, for messages. */
int glora_image_resize_parse(const char *s);
int glora_image_interp_parse(const char *s);
const char *glora_image_resize_name(glora_resize_t r);
const char *glora_image_interp_name(glora_interp_t i);

/* Checks prep's fields; a message names the bad one. */
int glora_image_prep_check(const glora_image_prep_t *prep);

/* Applies prep to a decoded image: convert to prep->channels, then the
 * resize mode. *out is a new prep->channels x size x size image. name (the
 * file) is used in messages only. */
int glora_image_preprocess(glora_image_t *out, const glora_image_t *in,
                           const glora_image_prep_t *prep, const char *name);

/* Decode + preprocess one file: what `predict` on single files needs. */
int glora_image_load(glora_image_t *out, const char *path, const glora_image_prep_t *prep);

/* out[i] = ((float)p / 255.0f - mean[ch]) / std[ch] for the n images of
 * c x h x w bytes in u8 (the IDX loader's expression, so an IDX image and
 * the same image as a PNG give the same floats). out holds n*c*h*w floats. */
void glora_image_normalize(const uint8_t *u8, size_t n, int c, int h, int w,
                           const float *mean, const float *std, float *out);

/* ---- split sources ---------------------------------------------------- */

/* The images of a split, in order, with their labels. paths are as they will
 * be opened (root or the list's folder joined in front). class_names is set
 * for folders (num_classes names, the sub-folder names) and NULL for lists. */
typedef struct {
    size_t n;
    char **paths;
    int *labels;
    int num_classes;     /* folders: the number of classes; lists: max label + 1 */
    char **class_names;
} glora_image_list_t;

/* Reads a VTAB-1k / NOAH list file: one "relative/path label" per line,
 * split at the last space or tab, so paths may hold spaces; blank lines are
 * skipped; paths are relative to root, or to the list's folder when root is
 * NULL (absolute paths stay). Labels must be integers in [0, num_classes)
 * when num_classes > 0, in [0, 2^31) otherwise. Every listed file must
 * exist. Errors name the list file and the line. */
int glora_image_list_read(glora_image_list_t *out, const char *list_path, const char *root,
                          int num_classes);

/* Reads a torchvision ImageFolder tree: every sub-folder of dir is a class;
 * classes sorted by name (byte order, as Python's sorted), label = index;
 * inside a class, every file ending in .jpg, .jpeg or .png (any case) down
 * the sub-tree, ordered as torchvision's sorted(os.walk) then sorted names.
 * Files with another of torchvision's image extensions (.bmp, .ppm, .pgm,
 * .tif, .tiff, .webp) are an error, not silently skipped, since torchvision
 * would count them. A class without images is an error naming its folder. */
int glora_image_folder_read(glora_image_list_t *out, const char *dir);

/* Frees everything and zeroes *list; NULL-safe. */
void glora_image_list_free(glora_image_list_t *list);

/* ---- decoded splits --------------------------------------------------- */

/* n preprocessed images of c x size x size bytes each, and their labels. */
typedef struct {
    size_t n;
    int c, h, w;
    uint8_t *px;        /* n * c * h * w */
    int *y;             /* n */
    int num_classes;    /* copied from the list */
} glora_image_split_t;

void glora_image_split_free(glora_image_split_t *s);

/* Bytes the decoded pixels of n images take under prep (for a memory cap),
 * or SIZE_MAX on overflow. */
size_t glora_image_split_bytes(size_t n, const glora_image_prep_t *prep);

/* Decodes and preprocesses images [start, start + count) of list (count 0:
 * to the end) into *out, in list order; images are decoded in parallel
 * (OpenMP), each on its own, so the result does not depend on the number of
 * threads. When cache_path is not NULL, a cache file there is used if its key
 * matches, and written (atomically) otherwise. The key is the SHA-256 of the
 * selected paths and labels, every selected file's bytes and prep, so a
 * changed list, image or preprocessing never reuses a stale cache.
 * *cache_hit (may be NULL) tells whether the cache was used. */
int glora_image_split_load(glora_image_split_t *out, const glora_image_list_t *list,
                           size_t start, size_t count, const glora_image_prep_t *prep,
                           const char *cache_path, int *cache_hit);

/* A reader that yields a split in chunks of at most chunk images, for splits
 * that would not fit under a memory cap (eval, predict). */
typedef struct glora_image_stream glora_image_stream_t;

int glora_image_stream_open(glora_image_stream_t **out, const glora_image_list_t *list,
                            size_t start, size_t count, const glora_image_prep_t *prep,
                            size_t chunk);
/* Fills *chunk (freed and refilled on each call) with the next images;
 * chunk->n == 0 when the split is exhausted. */
int glora_image_stream_next(glora_image_stream_t *s, glora_image_split_t *chunk);
/* Index in the list of the first image the next call returns. */
size_t glora_image_stream_pos(const glora_image_stream_t *s);
void glora_image_stream_close(glora_image_stream_t *s);   /* NULL-safe */

#ifdef __cplusplus
}
#endif
#endif
