/*
 * images/mirror.h - private to images/ (and its unit test): the host's apt
 * mirror, read from sources.list and sources.list.d.
 */
#ifndef UPAAS_IMAGES_MIRROR_H
#define UPAAS_IMAGES_MIRROR_H

#ifndef UPAAS_IMAGES_INTERNAL
#error "images/mirror.h is private to images/"
#endif

#include "common/common.h"

#define MIRROR_FALLBACK "http://deb.debian.org/debian"

/* One "deb" source: a URI and its suites, in the order apt reads them. */
struct apt_source {
	char *uri;
	struct strv suites;
};
struct apt_sources {
	struct apt_source *v;
	size_t n;
	size_t cap;
};
#define APT_SOURCES_INIT { NULL, 0, 0 }
void apt_sources_free(struct apt_sources *l);

/* Parses one-line style text ("deb [opts] URI suite comps...") into l. */
void apt_sources_parse_list(struct apt_sources *l, const char *text);
/* Parses deb822 text (Types/URIs/Suites, paragraphs, comments) into l. */
void apt_sources_parse_deb822(struct apt_sources *l, const char *text);
/*
 * Reads <root>/etc/apt/sources.list, then <root>/etc/apt/sources.list.d/
 * *.list and *.sources in name order. Unreadable files are skipped.
 */
void apt_sources_read(struct apt_sources *l, const char *root);
/*
 * Picks the mirror for distribution: the first deb URI whose suites include
 * it, else the first that is not a security archive, else MIRROR_FALLBACK.
 * Writes it to out (replacing its content).
 */
void apt_sources_pick(const struct apt_sources *l, const char *distribution, struct buf *out);
/* apt_sources_read + apt_sources_pick. */
void mirror_detect(const char *root, const char *distribution, struct buf *out);

#endif
