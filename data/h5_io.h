// The HDF5 layer shared by every nanodiff file format (checkpoints, the evaluation classifier's cache, and
// any later model file): typed attributes described by field tables, string attributes as h5py writes them,
// float32 tensor groups with checksums, and files built whole in memory, then written atomically.
#ifndef ND_H5_IO_H
#define ND_H5_IO_H

#include <hdf5.h>

#include "data.h"
#include "h5_quiet.h"

// What a field of a C struct is stored as: int32 (one, or three for ND_H5_INT3), int64, uint64, float32,
// float64 or a uint8 flag (bool), all little endian.
typedef enum { ND_H5_INT, ND_H5_INT3, ND_H5_INT64, ND_H5_UINT64, ND_H5_FLOAT, ND_H5_DOUBLE, ND_H5_BOOL } nd_h5_kind;

// One attribute <name> holding the struct member at `offset`.
typedef struct nd_h5_field {
    const char *name;
    nd_h5_kind kind;
    size_t offset; // in the struct the table describes
    int min;       // smallest valid value, where the format checks one (0: none)
} nd_h5_field;

// A field's value in the struct at base, as text, for messages and comparisons (exact for every kind).
char *nd_h5_field_str(const nd_h5_field *f, const void *base, char *buf, size_t size);
// Writes `count` values (1: a scalar attribute).
bool nd_h5_attr_write(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, int count, const void *value);
// A variable-length UTF-8 string attribute (what h5py reads back as str).
bool nd_h5_attr_write_str(hid_t obj, const char *name, const char *value);
bool nd_h5_field_write(hid_t obj, const nd_h5_field *f, const void *base);
// Reads a field stored as a number of the right class (integer or float) and count; path names the file and
// where the object ("" for the root, "adam/" for a group) in the message.
bool nd_h5_field_read(hid_t obj, const char *path, const char *where, const nd_h5_field *f, void *base,
                      nd_error *err);
// Reads a string attribute, fixed or variable length (h5py writes either), into buf.
bool nd_h5_attr_read_str(hid_t obj, const char *path, const char *name, char *buf, size_t size, nd_error *err);
// Whether "a/b/c" exists (H5Lexists fails, negative, when an intermediate group is missing).
bool nd_h5_link_exists(hid_t file, const char *name);
// "(2,3,4)", as nd_shape_str writes shapes.
char *nd_h5_dims_str(const hsize_t *dims, int ndim, char *buf, size_t size);

// One float32 dataset per tensor of p in a new group, from host values laid out as p's flat buffer; each
// chunked whole with a Fletcher-32 checksum, so damaged data is refused when read. On failure, failed (size
// bytes) names the group or dataset.
bool nd_h5_write_params(hid_t file, const char *group, const nd_params *p, const float *host, char *failed,
                        size_t size);

// A new HDF5 file held in memory (the core driver, growing by `increment` bytes); -1 on failure. HDF5 never
// writes to the disk itself: HDF5 1.10 cannot close a file whose flush failed (a full disk), and the
// half-closed handle crashes the process when the library shuts down.
hid_t nd_h5_memory_create(size_t increment);
// Flushes and closes the in-memory file, then writes its image to path with nd_atomic_write; false with err
// (the target untouched). The file is closed either way. The price is host memory for two copies of it.
bool nd_h5_memory_save(hid_t file, const char *path, nd_error *err);

#endif
