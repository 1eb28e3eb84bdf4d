/*
 * The handshake counter of the `tls` measurement (measure/tls.rs), loaded
 * into wrk with LD_PRELOAD; the driver compiles it with `cc -shared -fPIC`
 * into target/bench/tls/. It wraps OpenSSL's SSL_connect:
 *
 * - every handshake that completes is counted as full or resumed
 *   (SSL_session_reused), and the counts are printed on stderr when wrk
 *   exits: "tls-handshakes: N full, M resumed";
 * - with BENCH_TLS_NO_RESUME=1, the session a connection slot kept from
 *   its previous connection is dropped before each new handshake starts
 *   (SSL_set_session(ssl, NULL)), so every handshake is a full one: wrk
 *   keeps one SSL object per connection slot and resumes with the session
 *   (TLS 1.3 ticket) of the slot's previous connection whenever the server
 *   allows it.
 *
 * No OpenSSL headers needed: the few functions are looked up with dlsym.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

static unsigned long full, resumed;
static int no_resume;
static int (*real_connect)(SSL *);
static int (*session_reused)(const SSL *);
static int (*in_before)(const SSL *);
static int (*set_session)(SSL *, SSL_SESSION *);

__attribute__((constructor)) static void init(void) {
    real_connect = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
    session_reused = (int (*)(const SSL *))dlsym(RTLD_NEXT, "SSL_session_reused");
    in_before = (int (*)(const SSL *))dlsym(RTLD_NEXT, "SSL_in_before");
    set_session = (int (*)(SSL *, SSL_SESSION *))dlsym(RTLD_NEXT, "SSL_set_session");
    const char *v = getenv("BENCH_TLS_NO_RESUME");
    no_resume = v != NULL && v[0] == '1';
}

int SSL_connect(SSL *ssl) {
    if (real_connect == NULL) {
        return -1;
    }
    /* Only before the handshake's first flight: wrk calls SSL_connect again
       while it wants to read or write. */
    if (no_resume && in_before != NULL && set_session != NULL && in_before(ssl)) {
        set_session(ssl, NULL);
    }
    int r = real_connect(ssl);
    if (r == 1 && session_reused != NULL) {
        if (session_reused(ssl)) {
            resumed++;
        } else {
            full++;
        }
    }
    return r;
}

__attribute__((destructor)) static void report(void) {
    if (real_connect != NULL) {
        fprintf(stderr, "tls-handshakes: %lu full, %lu resumed\n", full, resumed);
    }
}
