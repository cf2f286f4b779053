// The HDF5 superblock (format spec, "Disk Format: Level 0A"), read far enough to bound what libhdf5 will
// allocate for it: the end-of-file address and the driver information block must lie inside the file.
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "h5_guard.h"

#define H5_SIGNATURE "\211HDF\r\n\032\n"
#define H5_FIRST_SIGNATURE_AT 512 // a user block pushes the superblock to 512, 1024, 2048, ...

// Little-endian unsigned of `size` bytes (2, 4 or 8).
static uint64_t le_uint(const uint8_t *p, int size) {
    uint64_t v = 0;
    for (int i = size - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static bool undefined_address(uint64_t a, int size) { return size == 8 ? a == UINT64_MAX : a == (UINT64_C(1) << (8 * size)) - 1; }

bool nd_h5_check_layout(const char *path, nd_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return nd_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long file_size = ftell(f);
    uint8_t sb[96];
    long at = 0;
    bool found = false;
    while (!found && at + (long)sizeof sb <= file_size) {
        fseek(f, at, SEEK_SET);
        found = fread(sb, 1, sizeof sb, f) == sizeof sb && memcmp(sb, H5_SIGNATURE, 8) == 0;
        if (!found) at = at ? at * 2 : H5_FIRST_SIGNATURE_AT;
    }
    bool ok = true;
    uint8_t drv[8];
    if (found && sb[8] <= 1) { // versions 0 and 1 point at a driver information block
        int offsets = sb[13];
        const uint8_t *a = sb + (sb[8] == 0 ? 24 : 28); // base, free space, end of file, driver info addresses
        if (offsets != 2 && offsets != 4 && offsets != 8) {
            ok = nd_error_set(err, "%s: the HDF5 superblock gives %d-byte addresses: expected 2, 4 or 8 (the file "
                              "is damaged)", path, offsets);
        } else {
            uint64_t base = le_uint(a, offsets), eof = le_uint(a + 2 * offsets, offsets);
            uint64_t driver = le_uint(a + 3 * offsets, offsets);
            if (base > (uint64_t)file_size || eof > (uint64_t)file_size - base)
                ok = nd_error_set(err, "%s: the HDF5 superblock puts the end of the data at byte %llu, the file "
                                  "holds %ld (the file is truncated or damaged)",
                                  path, (unsigned long long)(base + eof), file_size);
            else if (!undefined_address(driver, offsets)) {
                uint64_t block = base + driver;
                bool header = block <= (uint64_t)file_size - 16 && fseek(f, (long)block + 4, SEEK_SET) == 0 &&
                              fread(drv, 1, 4, f) == 4;
                if (!header || le_uint(drv, 4) > (uint64_t)file_size - block - 16)
                    ok = nd_error_set(err, "%s: the HDF5 driver information block at byte %llu runs past the end "
                                      "of the file (%ld bytes): the file is damaged",
                                      path, (unsigned long long)block, file_size);
            }
        }
    }
    fclose(f);
    return ok;
}
