// HDF5 prints its own error stack on every failed call; nanodiff reports failures itself, naming the file
// and what was expected, so HDF5's printing is switched off around its calls and then put back as it was.
#ifndef ND_H5_QUIET_H
#define ND_H5_QUIET_H

#include <hdf5.h>

typedef struct nd_h5_quiet {
    H5E_auto2_t func; // the error printer in place before, and its argument
    void *data;
} nd_h5_quiet;

// Silences HDF5's error printing; returns what to restore.
static inline nd_h5_quiet nd_h5_silence(void) {
    nd_h5_quiet saved;
    H5Eget_auto2(H5E_DEFAULT, &saved.func, &saved.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return saved;
}

static inline void nd_h5_restore(nd_h5_quiet saved) { H5Eset_auto2(H5E_DEFAULT, saved.func, saved.data); }

#endif
