"""Writes models/zoo/pictures_font.cpp from the X11 misc-fixed fonts (public domain).

Usage:  apt-get download xfonts-base && dpkg-deb -x xfonts-base_*.deb x
        python3 tools/fonts/emit_pictures_font.py x/usr/share/fonts/X11/misc/ > models/zoo/pictures_font.cpp
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcf import read_pcf
D = sys.argv[1].rstrip('/') + '/'
CPS = list(range(32, 127)) + list(range(160, 256))
out = []
out.append('// Generated from the X11 misc-fixed bitmap fonts (xfonts-base, font-misc-misc:')
out.append('// "Public domain font.  Share and enjoy."). Glyphs for code points 32..126 and 160..255;')
out.append('// one uint16_t per pixel row, bit 15 = leftmost pixel.')
out.append('#include "models/zoo/pictures_font.h"')
out.append('')
out.append('namespace focus::zoo::detail {')
out.append('namespace {')
defs = []
for name, var in [('7x13', 'kRegular'), ('7x13B', 'kBold'), ('9x15B', 'kTitle')]:
    asc, desc, g = read_pcf(D + name + '.pcf.gz')
    W = int(name.split('x')[0]); H = asc + desc
    vals = []
    for cp in CPS:
        gl = g(cp)
        cell = [[0]*W for _ in range(H)]
        if gl is not None:
            assert gl['w'] == W, (name, cp, gl['w'])
            top = asc - gl['a']
            for y, row in enumerate(gl['rows']):
                for x, b in enumerate(row):
                    xx, yy = gl['l'] + x, top + y
                    if b and 0 <= xx < W and 0 <= yy < H: cell[yy][xx] = 1
        for row in cell:
            v = 0
            for x, b in enumerate(row):
                if b: v |= 1 << (15 - x)
            vals.append(v)
    out.append(f'// misc-fixed {name}: {W}x{H} cells, ascent {asc}')
    out.append(f'constexpr uint16_t {var}Rows[] = {{')
    for gi, cp in enumerate(CPS):
        ch = chr(cp)
        label = ("'%s'" % ch) if cp < 127 and ch not in "\\'" else ('U+%04X' % cp)
        out.append('    ' + ','.join('0x%04x' % v for v in vals[gi*H:(gi+1)*H]) + ',  // ' + label)
    out.append('};')
    defs.append((var, W, H, asc))
out.append('}  // namespace')
out.append('')
for var, W, H, asc in defs:
    fn = {'kRegular': 'regular_font', 'kBold': 'bold_font', 'kTitle': 'title_font'}[var]
    out.append(f'const BitmapFont& {fn}() {{')
    out.append(f'  static const BitmapFont font{{{W}, {H}, {asc}, {var}Rows}};')
    out.append('  return font;')
    out.append('}')
out.append('')
out.append('}  // namespace focus::zoo::detail')
print('\n'.join(out))
