#ifndef SEQD_CCURL_SHIM_H
#define SEQD_CCURL_SHIM_H
// libcurl's public header, reached through pkg-config's include path (Debian: libcurl4-openssl-dev).
#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are C variadic functions, which Swift cannot call. Each
// wrapper below fixes one argument type, so the compiler checks what Swift passes and the value
// reaches libcurl with exactly the C type the option expects (a Swift Int is not a C long on every
// platform, and a function pointer must not travel through void *). Prefixed seqd_ so they can
// never collide with libcurl's own symbols.

// For CURLOPTTYPE_LONG options (timeouts, flags, CURLOPT_USE_SSL's enum values).
static inline CURLcode seqd_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

// For CURLOPTTYPE_OFF_T options (CURLOPT_INFILESIZE_LARGE, CURLOPT_POSTFIELDSIZE_LARGE): curl_off_t
// is 64-bit even where long is 32-bit, and the variadic call must see exactly that width.
static inline CURLcode seqd_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

// For string options. libcurl copies every string option except CURLOPT_POSTFIELDS (use
// CURLOPT_COPYPOSTFIELDS), so Swift's temporary C string may die after the call.
static inline CURLcode seqd_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

// For data pointers (CURLOPT_READDATA, CURLOPT_DEBUGDATA, CURLOPT_ERRORBUFFER, ...): libcurl keeps
// the pointer, so the caller keeps what it points to alive for as long as the handle may use it.
static inline CURLcode seqd_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

// For list options (CURLOPT_MAIL_RCPT, CURLOPT_HTTPHEADER). libcurl does not copy lists: the caller
// frees the list only after the option was replaced or the handle cleaned up.
static inline CURLcode seqd_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

// CURLOPT_READFUNCTION: the upload source (the SMTP message). Typed so a Swift @convention(c)
// closure is checked against libcurl's signature; NULL restores libcurl's default (fread).
static inline CURLcode seqd_curl_setopt_read_callback(CURL *handle, curl_read_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_READFUNCTION, callback);
}

// CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION share this signature (response body and
// response header lines); NULL restores the default.
static inline CURLcode seqd_curl_setopt_write_callback(CURL *handle, CURLoption option, curl_write_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}

// CURLOPT_DEBUGFUNCTION: the only place libcurl shows the protocol exchange (commands out, replies
// in), which is how the SMTP transport learns at which stage a send failed. NULL detaches it.
static inline CURLcode seqd_curl_setopt_debug_callback(CURL *handle, curl_debug_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_DEBUGFUNCTION, callback);
}

// For CURLINFO_LONG values (CURLINFO_RESPONSE_CODE, CURLINFO_NUM_CONNECTS).
static inline CURLcode seqd_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

// For CURLINFO_OFF_T values (CURLINFO_CONNECT_TIME_T).
static inline CURLcode seqd_curl_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

// CURL_GLOBAL_DEFAULT is a macro built from other macros, which Swift does not import.
static inline CURLcode seqd_curl_global_init(void) {
    return curl_global_init(CURL_GLOBAL_DEFAULT);
}

#endif
