// The HDF5 layer shared by every nanodiff file format (DDPM and CLIP checkpoints, the evaluation classifier's
// cache, and any later model file): typed attributes described by field tables, string attributes as h5py
// writes them, float32 tensor groups with checksums checked and staged before a load changes anything, and
// files built whole in memory, then written atomically.
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
// Opens path read-only after checking it can be read and is HDF5; -1 with err ("cannot open the <what>",
// "not a nanodiff <what> (not an HDF5 file)", "cannot read the <what>: ... truncated or damaged") otherwise.
hid_t nd_h5_open(const char *path, const char *what, nd_error *err);
// Whether "a/b/c" exists (H5Lexists fails, negative, when an intermediate group is missing).
bool nd_h5_link_exists(hid_t file, const char *name);
// "(2,3,4)", as nd_shape_str writes shapes.
char *nd_h5_dims_str(const hsize_t *dims, int ndim, char *buf, size_t size);

// One float32 dataset per tensor of p in a new group, from host values laid out as p's flat buffer; each
// chunked whole with a Fletcher-32 checksum, so damaged data is refused when read. On failure, failed (size
// bytes) names the group or dataset.
bool nd_h5_write_params(hid_t file, const char *group, const nd_params *p, const float *host, char *failed,
                        size_t size);

// nd_h5_write_params from a flat device buffer of p->total floats (laid out as p), downloaded first.
bool nd_h5_write_device_params(hid_t file, const char *group, const nd_params *p, const float *flat,
                               nd_device device, char *failed, size_t size);

// A group of tensors a load reads: the tensors it must match, where they go, and the values read.
typedef struct nd_h5_group {
    const char *name, *what; // what: the group's purpose, for messages
    const nd_params *like;   // names and shapes; the values are laid out as its flat buffer
    float *dst;              // (like->total,) device buffer
    nd_device device;
    float *staged;           // (like->total,) host copy from the file, set by nd_h5_groups_read
} nd_h5_group;

// Checks that each group holds exactly its tensors, each float with the model's shape; the message names the
// first missing, extra or misshapen dataset with both shapes. path names the file in messages.
bool nd_h5_groups_check(hid_t file, const char *path, nd_h5_group *groups, int n, nd_error *err);
// Reads each (checked) group into a new host copy, staged; nothing reaches dst yet.
bool nd_h5_groups_read(hid_t file, const char *path, nd_h5_group *groups, int n, nd_error *err);
// Uploads every staged copy to its destination.
void nd_h5_groups_upload(const nd_h5_group *groups, int n);
void nd_h5_groups_free(nd_h5_group *groups, int n);

// A file being built: its handle and, once a step fails, which (for the message).
typedef struct nd_h5_writer {
    hid_t file;
    char failed[400];
} nd_h5_writer;

// Records the failing step: what, and the attribute, group or dataset it concerned (NULL: none); false.
bool nd_h5_writer_fail(nd_h5_writer *w, const char *what, const char *name);

// Builds a file in memory (growing by increment bytes) with write(w, arg), then writes it to path atomically
// (nd_h5_memory_save), HDF5's messages silenced; false with err "cannot save the <what>: <step> failed".
bool nd_h5_save(const char *path, const char *what, size_t increment, bool (*write)(nd_h5_writer *w, const void *arg),
                const void *arg, nd_error *err);

// A new HDF5 file held in memory (the core driver, growing by `increment` bytes); -1 on failure. HDF5 never
// writes to the disk itself: HDF5 1.10 cannot close a file whose flush failed (a full disk), and the
// half-closed handle crashes the process when the library shuts down.
hid_t nd_h5_memory_create(size_t increment);
// Flushes and closes the in-memory file, then writes its image to path with nd_atomic_write; false with err
// (the target untouched). The file is closed either way. The price is host memory for two copies of it.
bool nd_h5_memory_save(hid_t file, const char *path, nd_error *err);

#endif
