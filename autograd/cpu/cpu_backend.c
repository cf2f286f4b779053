// The CPU backend table.
#include "cpu.h"

// Every entry of backend_list.h bound, in its order, to nd_cpu_<entry> (the missing-entry check in backend.h).
static const nd_backend cpu_backend = {
    "cpu",
#define ND_BACKEND_ENTRY(ret, entry, params) nd_cpu_##entry,
#include "../backend_list.h"
};

const nd_backend *nd_backend_cpu(void) { return &cpu_backend; }
