/*
 * tests/unit/test-s3.c - the pure parts of the s3 handler: endpoint and
 * prefix handling at open, the ListObjectsV2 parser, XML entities, error
 * messages and codes, presigned URL shape. The handler's statics are
 * reached by including storage/s3.c; the network parts are covered by
 * tests/integration/s3.sh against a real radosgw.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "storage/s3.c"

static struct storage *open_s3(struct cfg_storage *cfg, struct err *e, int *ret)
{
	struct storage *st = xcalloc(1, sizeof(*st));

	st->ops = &storage_s3_ops;
	st->priv = xcalloc(1, storage_s3_ops.priv_size);
	*ret = storage_s3_ops.open(st, cfg, "/nonexistent", e);
	if (*ret < 0) {
		free(st->priv);
		free(st);
		return NULL;
	}
	return st;
}

static void close_s3(struct storage *st)
{
	storage_s3_ops.close(st);
	free(st->where);
	free(st->priv);
	free(st);
}

static void test_open_styles(void **state)
{
	struct cfg_storage cfg = {
		.endpoint = "http://127.0.0.1:7480/",
		.bucket = "b-1",
		.prefix = "/tenant/a",
		.path_style = true,
		.access_key = "AK",
		.secret_key = "SK",
		.retries = -1,
	};
	struct err e = ERR_INIT;
	int r;
	struct storage *st = open_s3(&cfg, &e, &r);

	assert_int_equal(r, 0);
	struct s3 *s3 = st->priv;
	assert_string_equal(s3->host, "127.0.0.1:7480");
	assert_string_equal(s3->base_path, "/b-1");
	assert_string_equal(s3->prefix, "tenant/a/");
	assert_string_equal(st->where, "s3://b-1/tenant/a/");
	assert_int_equal(s3->part_size, 16 * MiB);
	assert_int_equal(s3->retries, 4);
	close_s3(st);

	cfg.path_style = false;
	cfg.endpoint = "https://s3.example.com/base";
	cfg.prefix = NULL;
	st = open_s3(&cfg, &e, &r);
	assert_int_equal(r, 0);
	s3 = st->priv;
	assert_string_equal(s3->host, "b-1.s3.example.com");
	assert_string_equal(s3->base_path, "/base");
	assert_string_equal(s3->scheme, "https");
	assert_string_equal(s3->prefix, "");

	/* the URL path of a key: encoded once, '/' kept */
	struct s3_req rq = { .method = "GET", .key = "a b/c+d//é" };
	struct buf path = BUF_INIT;
	req_path(s3, &rq, &path);
	assert_string_equal(path.p, "/base/a%20b/c%2Bd//%C3%A9");
	buf_free(&path);

	/* presigned URLs never carry the secret */
	struct buf url = BUF_INIT;
	assert_int_equal(s3_presign(st, "packages/x y.tar.zst", 60, &url, &e), 0);
	assert_true(!strncmp(url.p, "https://b-1.s3.example.com/base/packages/x%20y.tar.zst?"
			     "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F", 96));
	assert_non_null(strstr(url.p, "&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature="));
	assert_null(strstr(url.p, "SK"));
	assert_int_equal(s3_presign(st, "k", 604801, &url, &e), -EINVAL);
	buf_free(&url);
	close_s3(st);
	err_free(&e);
}

static void test_open_errors(void **state)
{
	static const char *bad_endpoints[] = {
		"127.0.0.1:7480", "ftp://x", "http://", "http:///x", "http://u:p@host",
		"httpx://host", "http://host/?q",
	};
	struct cfg_storage cfg = {
		.bucket = "bucket",
		.access_key = "AK",
		.secret_key = "SK",
	};
	struct err e = ERR_INIT;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(bad_endpoints); i++) {
		cfg.endpoint = (char *)bad_endpoints[i];
		assert_null(open_s3(&cfg, &e, &r));
		assert_int_equal(r, -EINVAL);
		assert_non_null(strstr(err_msg(&e), "invalid endpoint"));
		err_clear(&e);
	}
	cfg.endpoint = "http://h";
	cfg.bucket = NULL;
	assert_null(open_s3(&cfg, &e, &r));
	assert_string_equal(err_msg(&e), "s3: no bucket name ''");
	err_clear(&e);

	cfg.bucket = "bucket";
	cfg.secret_key = NULL;
	unsetenv("AWS_SECRET_ACCESS_KEY");
	assert_null(open_s3(&cfg, &e, &r));
	assert_non_null(strstr(err_msg(&e), "no credentials for bucket 'bucket'"));
	err_clear(&e);

	cfg.secret_key = "SK";
	cfg.part_size = 1024 * 1024;
	assert_null(open_s3(&cfg, &e, &r));
	assert_non_null(strstr(err_msg(&e), "part_size"));
	err_free(&e);
}

static void test_xml(void **state)
{
	static const char xml[] = "<a><Code>x&amp;y &lt;z&gt; &quot;&apos; &#233;&#x20AC; &bogus; &</Code></a>";
	char *v = xml_find(xml, xml + strlen(xml), "Code", NULL);

	assert_string_equal(v, "x&y <z> \"' \xc3\xa9\xe2\x82\xac &bogus; &");
	free(v);
	assert_null(xml_find(xml, xml + strlen(xml), "Message", NULL));
	/* an unterminated element is not a value */
	assert_null(xml_find("<Key>abc", "<Key>abc" + 8, "Key", NULL));
}

struct seen {
	struct strv keys;
	uint64_t total;
	int64_t mtime;
};

static int seen_cb(void *data, const char *key, const struct storage_stat *st)
{
	struct seen *s = data;

	strv_push(&s->keys, key);
	s->total += st->size;
	s->mtime = st->mtime;
	return 0;
}

static void test_list_page(void **state)
{
	static const char page[] =
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
		"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		"<Name>b</Name><Prefix>p/</Prefix><MaxKeys>2</MaxKeys>"
		"<IsTruncated>true</IsTruncated>"
		"<Contents><Key>p/a &amp; b.txt</Key><LastModified>2026-11-20T21:45:00.000Z</LastModified>"
		"<ETag>&quot;x&quot;</ETag><Size>10</Size></Contents>"
		"<Contents><Key>p/caf&#xE9;/&lt;Key&gt;</Key><Size>5</Size>"
		"<LastModified>2026-11-20T21:45:01.000Z</LastModified></Contents>"
		"<Contents><Key>other/x</Key><Size>7</Size></Contents>"
		"<Contents><Key>p/../evil</Key><Size>7</Size></Contents>"
		"<KeyCount>2</KeyCount><NextContinuationToken>tok/+=</NextContinuationToken>"
		"</ListBucketResult>";
	struct s3 s3 = { .prefix = "p/", .bucket = "b" };
	struct buf b = BUF_INIT;
	struct seen s = { STRV_INIT, 0, 0 };
	struct err e = ERR_INIT;
	char *token = NULL;

	buf_adds(&b, page);
	assert_int_equal(list_page(&s3, &b, seen_cb, &s, &token, &e), 0);
	assert_int_equal(s.keys.n, 2);
	assert_string_equal(s.keys.v[0], "a & b.txt");
	assert_string_equal(s.keys.v[1], "caf\xc3\xa9/<Key>");
	assert_int_equal(s.total, 15);
	assert_int_equal(s.mtime, 1795211101);
	assert_string_equal(token, "tok/+=");
	free(token);

	/* truncated without a token is an error, not an endless loop */
	buf_reset(&b);
	buf_adds(&b, "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>");
	assert_int_equal(list_page(&s3, &b, seen_cb, &s, &token, &e), -EIO);
	assert_null(token);
	buf_free(&b);
	strv_free(&s.keys);
	err_free(&e);
}

static void test_mp_list_page(void **state)
{
	static const char page[] =
		"<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		"<Bucket>b</Bucket><KeyMarker></KeyMarker><Prefix>p/</Prefix>"
		"<NextKeyMarker>p/z &amp; y</NextKeyMarker><NextUploadIdMarker>2~u</NextUploadIdMarker>"
		"<IsTruncated>true</IsTruncated>"
		"<Upload><Key>p/packages/a.tar.zst</Key><UploadId>2~abc</UploadId>"
		"<Initiated>2026-11-20T21:45:00.000Z</Initiated></Upload>"
		"<Upload><Key>other/x</Key><UploadId>2~zzz</UploadId></Upload>"
		"<Upload><Key>p/no-id</Key></Upload>"
		"<Upload><Key>p/z &amp; y</Key><UploadId>2~u</UploadId></Upload>"
		"</ListMultipartUploadsResult>";
	struct s3 s3 = { .prefix = "p/", .bucket = "b" };
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	struct mp_entry *v = NULL;
	size_t n = 0;
	char *nk = NULL, *ni = NULL;

	buf_adds(&b, page);
	assert_int_equal(mp_list_page(&s3, &b, &v, &n, &nk, &ni, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].key, "packages/a.tar.zst");
	assert_string_equal(v[0].id, "2~abc");
	assert_int_equal(v[0].initiated, 1795211100);
	assert_string_equal(v[1].key, "z & y");
	assert_int_equal(v[1].initiated, 0);
	assert_string_equal(nk, "p/z & y");
	assert_string_equal(ni, "2~u");
	mp_entries_free(v, n);
	free(nk);
	free(ni);

	/* the last page */
	buf_reset(&b);
	buf_adds(&b, "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
		     "</ListMultipartUploadsResult>");
	assert_int_equal(mp_list_page(&s3, &b, &v, &n, &nk, &ni, &e), 0);
	assert_int_equal(n, 0);
	assert_null(nk);
	mp_entries_free(v, n);
	/* truncated without a marker is an error, not an endless loop */
	buf_reset(&b);
	buf_adds(&b, "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
		     "</ListMultipartUploadsResult>");
	assert_int_equal(mp_list_page(&s3, &b, &v, &n, &nk, &ni, &e), -EIO);
	assert_null(nk);
	buf_free(&b);
	err_free(&e);
}

static void test_errors(void **state)
{
	static const struct {
		long status;
		const char *body;
		int code;
		const char *msg;
	} t[] = {
		{ 403, "<Error><Code>SignatureDoesNotMatch</Code><RequestId>1</RequestId></Error>", -EACCES,
		  "s3: PUT 'packages/app/x.tar.zst' in bucket 'b' failed: 403 SignatureDoesNotMatch" },
		{ 404, "<Error><Code>NoSuchKey</Code><Message>The key does not exist</Message></Error>",
		  -ENOENT, "s3: PUT 'packages/app/x.tar.zst' in bucket 'b' failed: 404 NoSuchKey "
		  "(The key does not exist)" },
		{ 404, "", -ENOENT, "s3: PUT 'packages/app/x.tar.zst' in bucket 'b' failed: 404 Not Found" },
		{ 500, "<Error><Code>InternalError</Code></Error>", -EIO,
		  "s3: PUT 'packages/app/x.tar.zst' in bucket 'b' failed: 500 InternalError" },
	};
	struct s3 s3 = { .bucket = "b" };

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct s3_req rq = { .method = "PUT", .key = "packages/app/x.tar.zst" };
		struct err e = ERR_INIT;

		req_reset(&rq);
		rq.status = t[i].status;
		rq.reason = xstrdup("Not Found");
		buf_adds(&rq.resp, t[i].body);
		assert_int_equal(req_outcome(&rq), t[i].status >= 500 ? OUT_RETRY : OUT_FAIL);
		assert_int_equal(req_error(&s3, &rq, 1, &e), t[i].code);
		assert_string_equal(err_msg(&e), t[i].msg);
		err_free(&e);
		req_free(&rq);
	}

	/* an error inside a 200 (CompleteMultipartUpload) is retried */
	struct s3_req rq = { .method = "POST", .key = "k" };
	req_reset(&rq);
	rq.status = 200;
	buf_adds(&rq.resp, "<Error><Code>InternalError</Code></Error>");
	assert_int_equal(req_outcome(&rq), OUT_RETRY);
	/* a transport error after bytes reached the sink is final */
	rq.cc = CURLE_RECV_ERROR;
	rq.delivered = 1;
	assert_int_equal(req_outcome(&rq), OUT_FAIL);
	req_free(&rq);

	for (int n = 1; n < 30; n++) {
		unsigned ms = backoff_ms(n);
		assert_true(ms >= 200 && ms <= S3_BACKOFF_MAX_MS + S3_BACKOFF_MAX_MS / 5);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_styles),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_xml),
		cmocka_unit_test(test_list_page),
		cmocka_unit_test(test_mp_list_page),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests_name("s3", tests, NULL, NULL);
}
