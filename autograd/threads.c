// OpenMP's wait policy: nanodiff's programs run their parallel regions with idle threads sleeping, not spinning.
#include <stdlib.h>
#include <unistd.h>

#include "autograd.h"

void nd_threads_prefer_passive(char **argv) {
    // libgomp reads OMP_WAIT_POLICY once, when it loads, so the only way to change it is to start again.
    // On a machine shared with other work (ctest -j, a second job) a team member that loses its core leaves
    // the others spinning at every barrier: passive waiting measured 4x faster steps under load, and within
    // a few percent of spinning on an idle machine.
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
    // exec failed (no /proc): carry on with the default policy
}
