#!/usr/bin/python3
"""Writes tests/fixtures/image: small JPEG/PNG files of every kind glora
reads, the pixels PIL + torchvision transforms give for them, and bad inputs.

    /usr/bin/python3 tests/ref/make_image_fixtures.py [OUTDIR]

Needs Debian's python3-pil and python3-numpy; python3-torchvision is used for
Resize / CenterCrop when present (otherwise the same PIL calls it makes are
made directly, which the script says). make check never runs this; it reads
the committed outputs:

  manifest.txt   one line per reference:  SRC CHANNELS OP PARAM INTERP OUT
                 OP decode  : Image.open(SRC).convert('RGB' or 'L')
                 OP squash  : + Resize((P, P), INTERP)             P = PARAM
                 OP shorter : + Resize(floor(S / CROP), INTERP) + CenterCrop(S),
                              PARAM = S/CROP (timm's eval transform)
                 OP resize  : + Image.resize((W, H), INTERP),      PARAM = WxH
                 OUT holds the 8-bit result, channel-major (C, H, W), raw.
  folder.txt     torchvision ImageFolder(folder).classes and .samples
  error/*        inputs every reader must refuse with a one-line message

16-bit PNGs: PIL keeps the high byte of 16-bit RGB and clips 16-bit grey;
glora scales, v8 = round(v16 * 255 / 65535). Their references are computed
that way with numpy (from the 16-bit values written), then go through the
same PIL transforms.
"""
import io
import math
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

try:
    import torchvision.transforms as T
    from torchvision.transforms import InterpolationMode as IM
    HAVE_TV = True
except Exception:  # pragma: no cover
    HAVE_TV = False

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "image")
PIL_FILTER = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def scene(w, h, seed):
    """A photo-like RGB test card: gradients, waves, sharp edges, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / max(w, 1) * 7.0 + y / max(h, 1) * 2.0)
    g = 255.0 * x / max(w - 1, 1)
    b = 255.0 * y / max(h - 1, 1)
    img = np.stack([r, g, b], axis=-1)
    # hard-edged blocks (bicubic overshoot must clip) and a checkerboard
    img[(x > w * 0.3) & (x < w * 0.45) & (y > h * 0.2) & (y < h * 0.7)] = [255, 255, 255]
    img[(x > w * 0.6) & (x < w * 0.8) & (y > h * 0.5)] = [0, 0, 0]
    cb = ((x.astype(int) // 3 + y.astype(int) // 3) % 2 == 0) & (x > w * 0.85)
    img[cb] = [250, 10, 40]
    img += rng.normal(0, 12, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def png_chunk(kind, data, bad_crc=False):
    crc = zlib.crc32(kind + data) & 0xffffffff
    if bad_crc:
        crc ^= 0x1
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def raw_png(w, h, depth, ctype, rows, bad_crc=False):
    """A plain PNG written by hand (PIL cannot write 16-bit RGB or 2-bit grey)."""
    raw = b"".join(b"\x00" + row for row in rows)
    return (b"\x89PNG\r\n\x1a\n" +
            png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)) +
            png_chunk(b"IDAT", zlib.compress(raw, 9), bad_crc) +
            png_chunk(b"IEND", b""))


def write(name, data):
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def save(name, im, **kw):
    buf = io.BytesIO()
    im.save(buf, format="PNG" if name.lower().endswith(".png") else "JPEG", **kw)
    write(name, buf.getvalue())


def transform(im, op, param, interp):
    f = PIL_FILTER[interp]
    if op == "decode":
        return im
    if op == "resize":
        w, h = (int(v) for v in param.split("x"))
        return im.resize((w, h), f)
    if op == "squash":
        s = int(param)
        return T.Resize((s, s), interpolation=IM(interp))(im) if HAVE_TV else im.resize((s, s), f)
    if op == "shorter":
        s, crop = param.split("/")
        s, crop = int(s), float(crop)
        scale = math.floor(s / crop)
        if HAVE_TV:
            return T.CenterCrop(s)(T.Resize(scale, interpolation=IM(interp))(im))
        w, h = im.size
        short, long_ = (w, h) if w <= h else (h, w)
        nl = int(scale * long_ / short)
        nw, nh = (scale, nl) if w <= h else (nl, scale)
        im = im.resize((nw, nh), f)
        top, left = int(round((nh - s) / 2.0)), int(round((nw - s) / 2.0))
        return im.crop((left, top, left + s, top + s))
    raise ValueError(op)


def to_chw(im):
    a = np.asarray(im, dtype=np.uint8)
    if a.ndim == 2:
        a = a[None]
    else:
        a = a.transpose(2, 0, 1)
    return np.ascontiguousarray(a)


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = []
    pil16 = {}   # 16-bit files: the 8-bit image glora's scaling gives

    big = scene(500, 375, 1)
    small = scene(37, 23, 2)
    tall = scene(23, 37, 3)
    save("rgb_500x375.jpg", Image.fromarray(big), quality=85)
    save("rgb_37x23.jpg", Image.fromarray(small), quality=90)
    save("rgb_37x23_444.jpg", Image.fromarray(small), quality=95, subsampling=0)
    save("rgb_37x23_prog.jpg", Image.fromarray(small), quality=80, progressive=True)
    save("rgb_23x37.jpg", Image.fromarray(tall), quality=90)
    save("grey_37x23.jpg", Image.fromarray(small).convert("L"), quality=90)
    save("rgb_1x1.jpg", Image.fromarray(small[:1, :1]), quality=90)
    save("rgb_37x23.png", Image.fromarray(small))
    save("rgb_1x1.png", Image.fromarray(small[5:6, 7:8]))
    save("grey_37x23.png", Image.fromarray(small).convert("L"))
    rgba = np.concatenate([small, (np.arange(37 * 23) % 256).reshape(23, 37, 1).astype(np.uint8)], 2)
    save("rgba_37x23.png", Image.fromarray(rgba, "RGBA"))
    save("la_37x23.png", Image.fromarray(rgba, "RGBA").convert("LA"))
    pal = Image.fromarray(small).convert("P", palette=Image.ADAPTIVE, colors=16)
    save("pal_37x23.png", pal, transparency=3)
    # 2-bit grey, written by hand
    g2 = (np.arange(37 * 23).reshape(23, 37) * 7 // 5) % 4
    rows = []
    for r in g2:
        bits = np.concatenate([r, np.zeros((-len(r)) % 4, dtype=r.dtype)]).reshape(-1, 4)
        rows.append(bytes(((bits[:, 0] << 6) | (bits[:, 1] << 4) | (bits[:, 2] << 2) | bits[:, 3]).astype(np.uint8)))
    write("grey2_37x23.png", raw_png(37, 23, 2, 0, rows))
    # 16-bit RGB and grey, written by hand
    rng = np.random.default_rng(4)
    v16 = (small.astype(np.uint32) * 257 + rng.integers(-200, 200, small.shape)).clip(0, 65535).astype(np.uint16)
    write("rgb16_37x23.png", raw_png(37, 23, 16, 2, [r.astype(">u2").tobytes() for r in v16]))
    ref8 = ((v16.astype(np.uint64) * 255 + 32767) // 65535).astype(np.uint8)
    pil16["rgb16_37x23.png"] = Image.fromarray(ref8)
    g16 = v16[:, :, 1]
    write("grey16_37x23.png", raw_png(37, 23, 16, 0, [r.astype(">u2").tobytes() for r in g16]))
    pil16["grey16_37x23.png"] = Image.fromarray(((g16.astype(np.uint64) * 255 + 32767) // 65535).astype(np.uint8))

    def ref(src, channels, op, param, interp, tag):
        im = pil16.get(src) or Image.open(os.path.join(OUT, src))
        im = im.convert("RGB" if channels == 3 else "L")
        a = to_chw(transform(im, op, param, interp))
        out = "ref/%s.%s.u8" % (os.path.splitext(src)[0] + "_" + os.path.splitext(src)[1][1:], tag)
        write(out, a.tobytes())
        manifest.append("%s %d %s %s %s %s" % (src, channels, op, param, interp, out))

    smalls = ["rgb_37x23.jpg", "rgb_37x23_444.jpg", "rgb_37x23_prog.jpg", "rgb_23x37.jpg",
              "grey_37x23.jpg", "rgb_1x1.jpg", "rgb_37x23.png", "rgb_1x1.png", "grey_37x23.png",
              "rgba_37x23.png", "la_37x23.png", "pal_37x23.png", "grey2_37x23.png",
              "rgb16_37x23.png", "grey16_37x23.png"]
    for s in smalls:
        ref(s, 3, "decode", "-", "bicubic", "rgb")
        ref(s, 1, "decode", "-", "bicubic", "l")
        ref(s, 3, "squash", "64", "bicubic", "sq64_bicubic")
    for s in ["rgb_37x23.jpg", "rgb_23x37.jpg", "rgb_37x23.png", "grey_37x23.png"]:
        ref(s, 3, "squash", "16", "bicubic", "sq16_bicubic")
        ref(s, 3, "squash", "16", "bilinear", "sq16_bilinear")
        ref(s, 3, "squash", "16", "nearest", "sq16_nearest")
        ref(s, 3, "squash", "64", "bilinear", "sq64_bilinear")
        ref(s, 3, "squash", "64", "nearest", "sq64_nearest")
        ref(s, 3, "shorter", "32/0.9", "bicubic", "sh32_090_bicubic")
        ref(s, 3, "shorter", "21/0.875", "bilinear", "sh21_0875_bilinear")
        ref(s, 1, "shorter", "20/0.95", "bicubic", "l_sh20_095_bicubic")
        ref(s, 3, "resize", "11x50", "bicubic", "r11x50_bicubic")
        ref(s, 3, "resize", "50x11", "bilinear", "r50x11_bilinear")
        ref(s, 3, "resize", "37x7", "bicubic", "r37x7_bicubic")
        ref(s, 3, "resize", "5x23", "bicubic", "r5x23_bicubic")
        ref(s, 3, "resize", "7x3", "nearest", "r7x3_nearest")
        ref(s, 3, "resize", "111x13", "nearest", "r111x13_nearest")
    for s in ["rgb_1x1.png", "rgb_1x1.jpg"]:
        ref(s, 3, "squash", "5", "bicubic", "sq5_bicubic")
        ref(s, 3, "squash", "5", "nearest", "sq5_nearest")
    ref("rgb_500x375.jpg", 3, "squash", "224", "bicubic", "sq224_bicubic")
    ref("rgb_500x375.jpg", 3, "shorter", "224/0.9", "bicubic", "sh224_090_bicubic")
    ref("rgb_500x375.jpg", 3, "squash", "96", "bilinear", "sq96_bilinear")
    ref("rgb_500x375.jpg", 3, "squash", "64", "nearest", "sq64_nearest")
    ref("rgb_500x375.jpg", 1, "squash", "96", "bicubic", "l_sq96_bicubic")
    ref("rgb_500x375.jpg", 3, "resize", "601x17", "bicubic", "r601x17_bicubic")

    # An ImageFolder tree (class names sorted as bytes; nested files; other
    # files ignored) and what torchvision makes of it.
    fold = Image.fromarray(small)
    for p in ["folder/b_dog/x.png", "folder/a_cat/z.jpg", "folder/a_cat/sub/y.PNG",
              "folder/a_cat/A.jpeg", "folder/B_bird/w.png"]:
        save(p, fold.convert("L") if "bird" in p else fold)
    write("folder/a_cat/notes.txt", b"not an image\n")
    lines = []
    if HAVE_TV:
        from torchvision.datasets import ImageFolder
        ds = ImageFolder(os.path.join(OUT, "folder"))
        lines.append("classes " + " ".join(ds.classes))
        for path, label in ds.samples:
            lines.append("%s %d" % (os.path.relpath(path, OUT), label))
        write("folder.txt", ("\n".join(lines) + "\n").encode())

    # A list file with a path holding a space, a blank line and CRLF endings.
    save("dir with space/im 1.png", Image.fromarray(small))
    write("list_ok.txt", b"rgb_37x23.png 2\r\n\r\ndir with space/im 1.png 0\r\ngrey_37x23.jpg\t1\r\n")

    # Bad inputs.
    jpg = open(os.path.join(OUT, "rgb_500x375.jpg"), "rb").read()
    write("error/truncated.jpg", jpg[: len(jpg) // 2])
    write("error/badcrc.png", raw_png(37, 23, 8, 2, [r.tobytes() for r in small], bad_crc=True))
    write("error/notimage.png", b"just some text, not an image\n")
    write("error/list_nolabel.txt", b"../rgb_37x23.png 1\n../rgb_37x23.jpg\n")
    write("error/list_badlabel.txt", b"../rgb_37x23.png 1\n\n../rgb_37x23.jpg cat\n")
    write("error/list_range.txt", b"../rgb_37x23.png 1\n../rgb_37x23.jpg 3\n")
    write("error/list_missing.txt", b"../rgb_37x23.png 1\n../missing.png 0\n")
    write("error/list_truncated.txt", b"truncated.jpg 0\n")

    write("manifest.txt", ("\n".join(manifest) + "\n").encode())
    print("wrote %d references to %s (torchvision: %s)" % (len(manifest), OUT, HAVE_TV))


if __name__ == "__main__":
    main()
