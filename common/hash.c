/*
 * common/hash.c - SHA-256 with OpenSSL's EVP (hardware-accelerated), used by
 * every module that stores or verifies a blob. HMAC and SigV4 stay in
 * storage/s3: only the hash is shared.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <string.h>

#include "common/common.h"

static void to_hex(const unsigned char *d, size_t n, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 15];
	}
	hex[2 * n] = '\0';
}

int sha256_init(struct sha256 *h)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return -EIO;
	}
	h->ctx = ctx;
	return 0;
}

void sha256_update(struct sha256 *h, const void *p, size_t n)
{
	if (h->ctx && n)
		EVP_DigestUpdate(h->ctx, p, n);
}

void sha256_final(struct sha256 *h, char hex[65])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	hex[0] = '\0';
	if (!h->ctx)
		return;
	EVP_DigestFinal_ex(h->ctx, d, &n);
	to_hex(d, n, hex);
	sha256_free(h);
}

void sha256_free(struct sha256 *h)
{
	if (h->ctx)
		EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

void sha256_hex(const void *p, size_t n, char hex[65])
{
	struct sha256 h = { 0 };
	if (sha256_init(&h) < 0) {
		hex[0] = '\0';
		return;
	}
	sha256_update(&h, p, n);
	sha256_final(&h, hex);
}

int sha256_file(const char *path, char hex[65], uint64_t *ret_size, struct err *e)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "cannot open '%s': %m", path);
	struct sha256 h = { 0 };
	int r = sha256_init(&h);
	if (r < 0)
		return err_set(e, r, "cannot initialise sha256");
	const size_t bs = 1 << 20;
	_cleanup_free_ char *block = xmalloc(bs);
	uint64_t size = 0;
	for (;;) {
		ssize_t n = read(fd, block, bs);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			sha256_free(&h);
			return err_set_errno(e, r, "cannot read '%s'", path);
		}
		if (n == 0)
			break;
		sha256_update(&h, block, (size_t)n);
		size += (uint64_t)n;
	}
	sha256_final(&h, hex);
	if (ret_size)
		*ret_size = size;
	return 0;
}

int hash_git_blob(int fd, uint64_t size, bool sha256, char hex[65])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	int r = 0;
	if (EVP_DigestInit_ex(ctx, sha256 ? EVP_sha256() : EVP_sha1(), NULL) != 1)
		r = -EIO;
	char head[48];
	int hl = snprintf(head, sizeof(head), "blob %llu", (unsigned long long)size);
	if (r == 0)
		EVP_DigestUpdate(ctx, head, (size_t)hl + 1);   /* with its NUL */
	char blk[65536];
	uint64_t left = size;
	while (r == 0 && left > 0) {
		ssize_t n = read(fd, blk, left > sizeof(blk) ? sizeof(blk) : (size_t)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;   /* shorter than its size said */
			break;
		}
		EVP_DigestUpdate(ctx, blk, (size_t)n);
		left -= (uint64_t)n;
	}
	if (r == 0) {
		unsigned char d[EVP_MAX_MD_SIZE];
		unsigned int n = 0;
		EVP_DigestFinal_ex(ctx, d, &n);
		to_hex(d, n, hex);
	}
	EVP_MD_CTX_free(ctx);
	return r;
}
