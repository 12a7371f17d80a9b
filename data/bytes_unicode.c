/* bytes_unicode.c: GPT-2's reversible byte <-> unicode mapping (how byte-level BPE writes
 * bytes as visible characters in tokenizer.json) and strict UTF-8 scanning. */
#include <string.h>

#include "tok_internal.h"

static int printable(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* The 68 other bytes in order: 0..32 -> U+0100..U+0120, 127..160 -> U+0121..U+0142,
 * 173 -> U+0143. */
uint32_t qtx_byte_to_cp(uint8_t b) {
    if (printable(b)) return b;
    if (b <= 32) return 256u + b;
    if (b <= 160) return 256u + 33u + (b - 127u);
    return 256u + 67u; /* 173, the soft hyphen */
}

int qtx_cp_to_byte(uint32_t cp) {
    if (cp < 256) return printable(cp) ? (int)cp : -1;
    if (cp <= 288) return (int)(cp - 256);
    if (cp <= 322) return (int)(cp - 256 - 33 + 127);
    if (cp == 323) return 173;
    return -1;
}

int qtx_byte_to_utf8(uint8_t b, char *dst) {
    uint32_t cp = qtx_byte_to_cp(b);
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    dst[0] = (char)(0xC0 | (cp >> 6));
    dst[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

long qtx_bytelevel_decode(const char *s, size_t len, uint8_t *dst) {
    const uint8_t *p = (const uint8_t *)s;
    long n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        if (p[i] < 0x80) {
            cp = p[i];
            i += 1;
        } else if ((p[i] & 0xE0) == 0xC0 && i + 1 < len && (p[i + 1] & 0xC0) == 0x80) {
            cp = (uint32_t)(p[i] & 0x1F) << 6 | (p[i + 1] & 0x3F);
            i += 2;
        } else {
            return -1; /* every mapped code point is below U+0800 */
        }
        int b = qtx_cp_to_byte(cp);
        if (b < 0) return -1;
        dst[n++] = (uint8_t)b;
    }
    return n;
}

int qtx_utf8_seq_len(const uint8_t *p, size_t n) {
    uint8_t c = p[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0; /* continuation byte or overlong 2-byte lead */
    if (c < 0xE0) return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (p[2] & 0xC0) != 0x80) return 0;
        uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF; /* overlong, surr. */
        return p[1] >= lo && p[1] <= hi ? 3 : 0;
    }
    if (c < 0xF5) {
        if (n < 4 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF; /* <= U+10FFFF */
        return p[1] >= lo && p[1] <= hi ? 4 : 0;
    }
    return 0;
}

size_t qtx_utf8_valid_prefix(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* ASCII runs, 8 bytes at a time: most text is mostly ASCII */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int k = qtx_utf8_seq_len(p + i, n - i);
        if (!k) return i;
        i += (size_t)k;
    }
    return n;
}
