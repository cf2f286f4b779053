// Checks of an HDF5 file's layout that libhdf5 1.10 does not make itself before it trusts what it reads.
#ifndef ND_H5_GUARD_H
#define ND_H5_GUARD_H

#include "data.h"

// Finds the superblock and checks that every block it points at lies inside the file: a damaged driver-info
// size makes H5Fopen allocate and zero-fill gigabytes (a 2 KB file took 4 GB and half a minute), and a global
// heap object larger than its collection makes a string read copy far past it. Call before H5Fopen; false with a message naming the file and the field when the file cannot be what it claims.
bool nd_h5_check_layout(const char *path, nd_error *err);

#endif
