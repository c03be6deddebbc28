"""A small reader for X11 PCF bitmap fonts (.pcf.gz): ascent, descent and glyph bitmaps."""
import gzip, struct, sys

def read_pcf(path):
    d = gzip.open(path).read()
    assert d[:4] == b'\x01fcp'
    n = struct.unpack('<I', d[4:8])[0]
    tables = {}
    for i in range(n):
        t, fmt, size, off = struct.unpack('<IIII', d[8+16*i:24+16*i])
        tables[t] = (fmt, size, off)
    def hdr(t):
        fmt, size, off = tables[t]
        f = struct.unpack('<I', d[off:off+4])[0]
        e = '>' if f & 4 else '<'
        return f, e, off + 4
    # accelerators
    t = 0x100 if 0x100 in tables else 2
    f, e, p = hdr(t)
    # noOverlap..., 8 bytes of flags, then fontAscent, fontDescent
    ascent, descent = struct.unpack(e+'ii', d[p+8:p+16])
    # metrics
    f, e, p = hdr(4)
    metrics = []
    if f & 0x100:
        cnt = struct.unpack(e+'H', d[p:p+2])[0]; p += 2
        for i in range(cnt):
            l, r, w, a, de = [x - 0x80 for x in d[p:p+5]]; p += 5
            metrics.append((l, r, w, a, de))
    else:
        cnt = struct.unpack(e+'I', d[p:p+4])[0]; p += 4
        for i in range(cnt):
            l, r, w, a, de, attr = struct.unpack(e+'hhhhhH', d[p:p+12]); p += 12
            metrics.append((l, r, w, a, de))
    # bitmaps
    f, e, p = hdr(8)
    cnt = struct.unpack(e+'I', d[p:p+4])[0]; p += 4
    offs = struct.unpack(e+'%dI' % cnt, d[p:p+4*cnt]); p += 4*cnt
    sizes = struct.unpack(e+'4I', d[p:p+16]); p += 16
    pad = f & 3
    bits = d[p:p+sizes[pad]]
    msb_bit = bool(f & 8)
    msb_byte = bool(f & 4)
    unit = 1 << ((f >> 4) & 3)
    padbytes = 1 << pad
    # encodings
    ef, ee, ep = hdr(32)
    min_b2, max_b2, min_b1, max_b1, default = struct.unpack(ee+'hhhhh', d[ep:ep+10]); ep += 10
    ncols = max_b2 - min_b2 + 1
    nrows = max_b1 - min_b1 + 1
    idx = struct.unpack(ee+'%dH' % (ncols*nrows), d[ep:ep+2*ncols*nrows])
    def glyph_index(cp):
        b1, b2 = cp >> 8, cp & 0xff
        if not (min_b1 <= b1 <= max_b1 and min_b2 <= b2 <= max_b2): return None
        g = idx[(b1-min_b1)*ncols + (b2-min_b2)]
        return None if g == 0xffff else g
    def glyph(cp):
        g = glyph_index(cp)
        if g is None: return None
        l, r, w, a, de = metrics[g]
        gw = r - l; gh = a + de
        stride = ((gw + padbytes*8 - 1) // (padbytes*8)) * padbytes
        o = offs[g]
        rows = []
        for y in range(gh):
            row = bytearray(bits[o + y*stride: o + (y+1)*stride])
            if not msb_byte and unit > 1:
                # swap bytes within units
                for u in range(0, len(row), unit):
                    row[u:u+unit] = row[u:u+unit][::-1]
            px = []
            for x in range(gw):
                byte = row[x // 8]
                bit = (byte >> (7 - x % 8)) & 1 if msb_bit else (byte >> (x % 8)) & 1
                px.append(bit)
            rows.append(px)
        return dict(l=l, r=r, w=w, a=a, de=de, rows=rows)
    return ascent, descent, glyph

if __name__ == '__main__':
    asc, desc, g = read_pcf(sys.argv[1])
    print(asc, desc)
    for ch in sys.argv[2]:
        gl = g(ord(ch))
        print(ch, {k: v for k, v in gl.items() if k != 'rows'})
        for r in gl['rows']: print(''.join('#' if b else '.' for b in r))
