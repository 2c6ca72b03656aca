/*
 * common/term.c - text from outside (app output, metadata, storage error
 * bodies) made harmless for a terminal: the bytes a terminal would act on
 * (ESC sequences that clear the screen, set the title or answer back, BEL,
 * CR overwriting a line, the C1 controls) are shown as \xHH instead.
 */
#include <string.h>

#include "common/common.h"

/* Length of the valid UTF-8 sequence at p (at most n bytes) encoding a
 * character from U+00A0 up (not a C1 control, no overlong form, no
 * surrogate); 0 when there is none. */
static size_t utf8_printable(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
		return 0;
	return len;
}

void buf_add_safe(struct buf *b, const void *data, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = data;

	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t len = 1;

		if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f)) {
			size_t j = i + 1;
			while (j < n && (p[j] == '\n' || p[j] == '\t' || (p[j] >= 0x20 && p[j] < 0x7f)))
				j++;
			buf_add(b, p + i, j - i);
			i = j;
			continue;
		}
		if (c >= 0x80 && (len = utf8_printable(p + i, n - i))) {
			buf_add(b, p + i, len);
			i += len;
			continue;
		}
		char esc[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
		buf_add(b, esc, sizeof(esc));
		i++;
	}
}

int fputs_safe(const char *s, FILE *f)
{
	_cleanup_buf_ struct buf b = BUF_INIT;
	buf_add_safe(&b, s, strlen(s));
	return fwrite(b.p, 1, b.len, f) == b.len ? 0 : EOF;
}
