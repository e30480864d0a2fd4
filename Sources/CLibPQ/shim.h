#ifndef SEQD_CLIBPQ_SHIM_H
#define SEQD_CLIBPQ_SHIM_H
// libpq's public header, reached through pkg-config's include path (Debian: libpq-dev puts it in
// /usr/include/postgresql). Nothing else is needed: libpq has no variadic calls we use.
#include <libpq-fe.h>
#endif
