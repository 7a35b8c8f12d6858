#!/usr/bin/python3
"""`gnnrec train --report-html`: the page a real run writes is self-contained, and headless
Chromium draws its charts.

Trains the synthetic demo (6 epochs, evaluated every 2nd), then checks the page: nothing it would
fetch or run, a chart per <svg> with the loss over 6 epochs and the metrics over the 3 evaluated
ones. With Chromium: --dump-dom shows every <svg> and <polyline> survived HTML parsing with the
same points, and in a screenshot (decoded here: zlib and the five PNG filters) each plot's axes
sit where the SVG puts them and every polyline's colour is found at its vertices and along its
segments, in its own chart.

Without Chromium (chromium, chromium-browser, google-chrome or headless_shell on PATH) the page
checks still run, then "SKIP: no chromium" and exit 77. Debian: apt-get install -y
--no-install-recommends chromium.
Run: GNNREC_BIN=build/gnnrec /usr/bin/python3 tests/test_report_html_chromium.py
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np

BIN = os.environ.get("GNNREC_BIN", "build/gnnrec")
EPOCHS, EVAL_EVERY = 6, 2
AXIS_GREY = (0x44, 0x44, 0x44)  # the plot frame's colour (cli/report_html.c, its CSS)


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def charts(html):
    """Each <svg> as {"frame": (left, top, bottom, right), "lines": [(rgb, [(x, y)...])]}."""
    out = []
    for svg in re.findall(r"<svg\b.*?</svg>", html, re.S):
        m = re.search(r'class="axis" d="M([\d.]+) ([\d.]+)V([\d.]+)H([\d.]+)"', svg)
        check(m, "a chart without its axes: " + svg[:200])
        lines = []
        for attrs in re.findall(r"<polyline\b([^>]*)>", svg):
            colour = re.search(r'stroke="#([0-9a-f]{6})"', attrs).group(1)
            pts = re.search(r'points="([^"]*)"', attrs).group(1).split()
            lines.append((tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4)),
                          [tuple(float(v) for v in p.split(",")) for p in pts]))
        out.append({"frame": tuple(float(v) for v in m.groups()), "lines": lines})
    return out


def check_page(html):
    check(html.startswith("<!DOCTYPE html>"), "no doctype")
    svg_ns = html.count('xmlns="http://www.w3.org/2000/svg"')
    check(html.count("http://") == svg_ns and "https://" not in html,
          "a URL other than the SVG namespace")
    for banned in ("<script", "src=", "@import", "url(", "<link", "<img", "<iframe"):
        check(banned not in html, "the page has " + banned)
    cs = charts(html)
    check(len(cs) >= 3, "expected the loss, ranking and time charts, got %d" % len(cs))
    check(len(cs) == svg_ns, "an <svg> without its namespace")
    loss, times = cs[0]["lines"], cs[-1]["lines"]
    check([len(p) for _, p in loss] == [EPOCHS], "the loss chart: %r" % loss)
    check(sorted(len(p) for _, p in times) == [EPOCHS // EVAL_EVERY, EPOCHS],
          "the time chart: %r" % times)
    for c in cs[1:-1]:
        check(c["lines"] and all(len(p) == EPOCHS // EVAL_EVERY for _, p in c["lines"]),
              "a metric chart without a series over the evaluated epochs: %r" % c)
    return cs


def read_png(path):
    """An 8-bit RGB or RGBA, non-interlaced PNG as an [h, w, 3] uint8 array."""
    with open(path, "rb") as f:
        data = f.read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", path + " is not a PNG")
    pos, idat = 8, []
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            check(depth == 8 and ctype in (2, 6) and not interlace,
                  "unexpected PNG format %r" % ((depth, ctype, interlace),))
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    bpp = 3 if ctype == 2 else 4
    stride = w * bpp
    raw = zlib.decompress(b"".join(idat))
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(h):
        ft, start = raw[y * (stride + 1)], y * (stride + 1) + 1
        line = np.frombuffer(raw, np.uint8, stride, start)
        if ft == 0:  # None
            cur = line
        elif ft == 1:  # Sub: a running sum along the row, per channel
            cur = np.cumsum(line.reshape(w, bpp), axis=0, dtype=np.uint64).astype(np.uint8)
        elif ft == 2:  # Up
            cur = line + prev
        elif ft in (3, 4):  # Average, Paeth: each byte needs the one decoded before it
            cur, up = bytearray(line.tobytes()), prev.tobytes()
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b = up[i]
                if ft == 3:
                    cur[i] = (cur[i] + ((a + b) >> 1)) & 255
                    continue
                c = up[i - bpp] if i >= bpp else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            cur = np.frombuffer(bytes(cur), np.uint8)
        else:
            fail("PNG filter type %d" % ft)
        out[y] = cur.reshape(-1)
        prev = out[y]
    return out.reshape(h, w, bpp)[:, :, :3]


def near(img, rgb, tol):
    return (np.abs(img.astype(np.int16) - np.array(rgb, np.int16)).max(axis=2) <= tol)


def longest_run(row):
    """(start, length) of the longest run of True in a 1-d bool array."""
    d = np.diff(np.concatenate(([0], row.astype(np.int8), [0])))
    starts, ends = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
    if not len(starts):
        return 0, 0
    i = np.argmax(ends - starts)
    return starts[i], ends[i] - starts[i]


def check_screenshot(img, cs):
    # Each chart's x axis: a row of the frame's grey about as long as the plot is wide (the first
    # of such rows: crisp edges draw it in one), its run's left end the y axis. Runs, not pixel
    # counts: a tick label's anti-aliased edge can have the same grey.
    grey = near(img, AXIS_GREY, 16)
    width = cs[0]["frame"][3] - cs[0]["frame"][0]
    rows = [y for y in range(img.shape[0])
            if grey[y].sum() >= 0.9 * width and longest_run(grey[y])[1] >= 0.9 * width]
    axes = [y for i, y in enumerate(rows) if i == 0 or rows[i - 1] != y - 1]
    check(len(axes) == len(cs), "found %d plot frames in the screenshot, the page has %d charts"
          % (len(axes), len(cs)))
    for n, (c, ay) in enumerate(zip(cs, axes)):
        left, top, bottom, right = c["frame"]
        x0, run = longest_run(grey[ay])
        check(abs(run - 1 - width) <= 2,
              "chart %d drawn %d px wide, not %d (scaled?)" % (n, run - 1, width))
        ox, oy = x0 - left, ay - bottom  # the <svg>'s origin in the screenshot
        col = grey[int(oy + top):ay, x0]
        check(col.mean() > 0.9, "chart %d: no y axis" % n)
        box = img[int(oy + top) - 4:ay + 4, int(ox + left) - 4:int(ox + right) + 5]
        for rgb, pts in c["lines"]:
            probes = list(pts) + [((x0 + x1) / 2, (y0 + y1) / 2)
                                  for (x0, y0), (x1, y1) in zip(pts, pts[1:])]
            hits = 0
            for x, y in probes:
                px, py = int(round(ox + x)), int(round(oy + y))
                hits += near(img[py - 3:py + 4, px - 3:px + 4], rgb, 30).any()
            check(hits >= 0.9 * len(probes), "chart %d: series #%02x%02x%02x found at %d of %d "
                  "points" % ((n,) + rgb + (hits, len(probes))))
            length = sum(np.hypot(x1 - x0, y1 - y0) for (x0, y0), (x1, y1) in zip(pts, pts[1:]))
            count = near(box, rgb, 30).sum()
            check(count >= 0.8 * length, "chart %d: series #%02x%02x%02x has %d pixels along "
                  "%.0f px of line" % ((n,) + rgb + (count, length)))
    print("screenshot: %d charts, %d series found where the SVG draws them"
          % (len(cs), sum(len(c["lines"]) for c in cs)))


def browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "headless_shell"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def main():
    with tempfile.TemporaryDirectory(prefix="gnnrec-html-") as tmp:
        out = os.path.join(tmp, "OUT.html")
        r = subprocess.run([BIN, "train", "--synthetic", "--epochs", str(EPOCHS), "--eval-every",
                            str(EVAL_EVERY), "--threads", "2", "--quiet", "--report-html", out],
                           capture_output=True, text=True, timeout=600)
        check(r.returncode == 0, "train exited %d: %s" % (r.returncode, r.stderr))
        with open(out, encoding="utf-8") as f:
            html = f.read()
        cs = check_page(html)
        print("page: %d charts, %d series, self-contained" % (len(cs),
                                                              sum(len(c["lines"]) for c in cs)))
        exe = browser()
        if not exe:
            print("SKIP: no chromium")
            return 77
        # Tall enough for every chart: the page above the charts, each chart and its heading.
        height = max(2400, 600 + sum(int(h) + 80 for h in
                                     re.findall(r'<svg\b[^>]*height="(\d+)"', html)))
        cmd = [exe, "--headless", "--disable-gpu", "--no-sandbox",
               "--user-data-dir=" + os.path.join(tmp, "profile")]
        url = "file://" + out
        dom = subprocess.run(cmd + ["--dump-dom", url], capture_output=True, text=True,
                             timeout=120)
        check(dom.returncode == 0, "chromium --dump-dom: " + dom.stderr[-2000:])
        parsed = charts(dom.stdout)
        check([c["lines"] for c in parsed] == [c["lines"] for c in cs],
              "the SVG did not survive parsing: %d charts in the DOM" % len(parsed))
        png = os.path.join(tmp, "shot.png")
        shot = subprocess.run(cmd + ["--screenshot=" + png, "--window-size=1200,%d" % height, url],
                              capture_output=True, text=True, timeout=120)
        check(shot.returncode == 0 and os.path.exists(png),
              "chromium --screenshot: " + shot.stderr[-2000:])
        check_screenshot(read_png(png), cs)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
