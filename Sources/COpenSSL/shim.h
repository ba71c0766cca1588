#ifndef PARLEY_COPENSSL_SHIM_H
#define PARLEY_COPENSSL_SHIM_H
#include <string.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/rand.h>
#include <openssl/bn.h>

// OpenSSL macros are not importable into Swift; wrap the ones we use.
static inline long parley_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline int parley_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int v) { return (int)SSL_CTX_set_min_proto_version(ctx, v); }
static inline size_t parley_BIO_pending(BIO *b) { return (size_t)BIO_ctrl_pending(b); }
static inline void parley_BIO_set_retry_read(BIO *b) { BIO_set_retry_read(b); }
static inline void parley_BIO_clear_retry_flags(BIO *b) { BIO_clear_retry_flags(b); }
static inline int parley_SSL_set_tlsext_host_name(SSL *s, const char *name) { return (int)SSL_set_tlsext_host_name(s, name); }
static inline int parley_TLS1_2_VERSION(void) { return TLS1_2_VERSION; }
static inline long parley_SSL_MODE_RELEASE_BUFFERS(void) { return SSL_MODE_RELEASE_BUFFERS; }
static inline long parley_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER(void) { return SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER; }
static inline long parley_SSL_MODE_ENABLE_PARTIAL_WRITE(void) { return SSL_MODE_ENABLE_PARTIAL_WRITE; }
static inline uint64_t parley_SSL_OP_NO_RENEGOTIATION(void) { return SSL_OP_NO_RENEGOTIATION; }
static inline uint64_t parley_SSL_OP_CIPHER_SERVER_PREFERENCE(void) { return SSL_OP_CIPHER_SERVER_PREFERENCE; }
static inline uint64_t parley_SSL_OP_NO_COMPRESSION(void) { return SSL_OP_NO_COMPRESSION; }
static inline int parley_BIO_TYPE_SOURCE_SINK(void) { return BIO_TYPE_SOURCE_SINK; }
static inline int parley_BIO_CTRL_FLUSH(void) { return BIO_CTRL_FLUSH; }
static inline long parley_SSL_CTX_set_session_cache_off(SSL_CTX *ctx) { return SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); }

/// ALPN: the server speaks HTTP/1.1 only. A client that offers ALPN without it is refused the
/// extension (the handshake goes on; RFC 7301 allows a fatal alert, browsers never offer less).
static int parley_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                              const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl; (void)arg;
    static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, http11, sizeof(http11), in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static inline void parley_SSL_CTX_use_http11_alpn(SSL_CTX *ctx) { SSL_CTX_set_alpn_select_cb(ctx, parley_alpn_select, NULL); }

static inline int parley_SSL_CTX_offer_http11_alpn(SSL_CTX *ctx) {
    static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    return SSL_CTX_set_alpn_protos(ctx, http11, sizeof(http11));
}

/// The first queued OpenSSL error as text (and the queue cleared); `buf` gets at most `len` bytes.
static inline unsigned long parley_take_error(char *buf, size_t len) {
    unsigned long e = ERR_peek_last_error();
    if (e != 0 && buf != NULL && len > 0) ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return e;
}

/// A self-signed ECDSA P-256 certificate for development: CN=localhost, SAN DNS:localhost and
/// IP:127.0.0.1, valid `days` from now. Writes the key (mode 0600 is the caller's job) and the
/// certificate as PEM. Returns 1 on success.
static inline int parley_make_self_signed(const char *certPath, const char *keyPath, int days) {
    int ok = 0;
    EVP_PKEY *pkey = NULL;
    X509 *x = NULL;
    BIO *kb = NULL, *cb = NULL;
    X509_EXTENSION *ext = NULL;
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (kctx == NULL || EVP_PKEY_keygen_init(kctx) <= 0) goto done;
    if (EVP_PKEY_CTX_set_group_name(kctx, "P-256") <= 0) goto done;
    if (EVP_PKEY_keygen(kctx, &pkey) <= 0) goto done;
    x = X509_new();
    if (x == NULL || !X509_set_version(x, 2)) goto done;
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof(serial)) != 1) goto done;
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (bn == NULL) goto done;
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL) goto done;
    if (X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400L) == NULL) goto done;
    if (!X509_set_pubkey(x, pkey)) goto done;
    X509_NAME *name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"Parley development", -1, -1, 0)) goto done;
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0)) goto done;
    if (!X509_set_issuer_name(x, name)) goto done;
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    if (ext == NULL || !X509_add_ext(x, ext, -1)) goto done;
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:FALSE");
    if (ext == NULL || !X509_add_ext(x, ext, -1)) goto done;
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_ext_key_usage, "serverAuth");
    if (ext == NULL || !X509_add_ext(x, ext, -1)) goto done;
    if (X509_sign(x, pkey, EVP_sha256()) <= 0) goto done;
    kb = BIO_new_file(keyPath, "w");
    if (kb == NULL || !PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL)) goto done;
    cb = BIO_new_file(certPath, "w");
    if (cb == NULL || !PEM_write_bio_X509(cb, x)) goto done;
    ok = 1;
done:
    if (ext) X509_EXTENSION_free(ext);
    if (kb) BIO_free(kb);
    if (cb) BIO_free(cb);
    if (x) X509_free(x);
    if (pkey) EVP_PKEY_free(pkey);
    if (kctx) EVP_PKEY_CTX_free(kctx);
    return ok;
}

/// Seconds until the certificate in `certPath` expires (negative once expired); INT64_MIN if unreadable.
static inline long long parley_cert_seconds_left(const char *certPath) {
    BIO *b = BIO_new_file(certPath, "r");
    if (b == NULL) return INT64_MIN;
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    if (x == NULL) return INT64_MIN;
    int days = 0, secs = 0;
    long long left = INT64_MIN;
    if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x))) left = (long long)days * 86400 + secs;
    X509_free(x);
    return left;
}
#endif
