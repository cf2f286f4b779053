// The HDF5 superblock (format spec, "Disk Format: Level 0A"), read far enough to bound what libhdf5 will
// allocate for it: the end-of-file address and the driver information block must lie inside the file; and
// the global heaps, whose object sizes libhdf5 does not check against their collection.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

// Global heap collections ("GCOL", where variable-length strings live): libhdf5 1.10 copies an object of
// whatever size its header gives, so a damaged size reads far past the collection. Every collection found is
// walked and each object must fit in it. Only 8-byte lengths (every writer's default) are checked.
static bool check_global_heaps(FILE *f, long file_size, const char *path, nd_error *err) {
    uint8_t *file = malloc((size_t)file_size);
    if (!file) return true; // too big to scan here: left to libhdf5
    fseek(f, 0, SEEK_SET);
    bool ok = fread(file, 1, (size_t)file_size, f) == (size_t)file_size;
    for (long at = 0; ok && at + 16 <= file_size; at++) {
        const uint8_t *c = file + at;
        if (memcmp(c, "GCOL", 4) != 0 || c[4] != 1 || c[5] || c[6] || c[7]) continue;
        uint64_t size = le_uint(c + 8, 8);
        if (size < 16 || size > (uint64_t)(file_size - at)) {
            ok = nd_error_set(err, "%s: the HDF5 global heap at byte %ld claims %llu bytes, past the end of the "
                              "file (the file is damaged)", path, at, (unsigned long long)size);
            break;
        }
        for (uint64_t p = 16; p + 16 <= size;) {
            unsigned index = (unsigned)le_uint(c + p, 2);
            uint64_t object = le_uint(c + p + 8, 8);
            if (object > size - p - 16 && index != 0) {
                ok = nd_error_set(err, "%s: the HDF5 global heap at byte %ld holds an object of %llu bytes in a "
                                  "collection of %llu (the file is damaged)", path, at, (unsigned long long)object,
                                  (unsigned long long)size);
                break;
            }
            if (index == 0) break; // the free space closes the collection
            p += 16 + (object + 7) / 8 * 8;
        }
    }
    free(file);
    return ok;
}

// The root group's symbol-table entry (superblock versions 0 and 1) caches the address of its name heap; a
// heap that is not there made libhdf5 1.10 read its size from whatever bytes are there and copy into a
// buffer it failed to allocate. The heap must start with "HEAP" and its data segment lie inside the file.
static bool root_heap_ok(FILE *f, const uint8_t *sb, const uint8_t *entry, int offsets, uint64_t base,
                         long file_size) {
    if (offsets != 8 || entry + 40 > sb + 96) return true; // only the common 8-byte layout is checked
    uint32_t cache_type = (uint32_t)le_uint(entry + 16, 4);
    if (cache_type != 1) return true; // no cached symbol-table addresses
    uint64_t heap = base + le_uint(entry + 32, 8);
    uint8_t h[32];
    if (heap > (uint64_t)file_size - sizeof h || fseek(f, (long)heap, SEEK_SET) != 0 || fread(h, 1, sizeof h, f) != sizeof h)
        return false;
    uint64_t data_size = le_uint(h + 8, 8), data_at = base + le_uint(h + 24, 8);
    return memcmp(h, "HEAP", 4) == 0 && data_at <= (uint64_t)file_size && data_size <= (uint64_t)file_size - data_at;
}

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
            else if (!root_heap_ok(f, sb, a + 4 * offsets, offsets, base, file_size))
                ok = nd_error_set(err, "%s: the HDF5 root group's name heap is missing or runs past the end of the "
                                  "file (%ld bytes): the file is damaged", path, file_size);
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
    if (ok && found && ((sb[8] <= 1 && sb[14] == 8) || (sb[8] >= 2 && sb[10] == 8)))
        ok = check_global_heaps(f, file_size, path, err);
    fclose(f);
    return ok;
}
