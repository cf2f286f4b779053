// IDX files (the MNIST format), gzipped or plain: zlib's gzread passes a file without a gzip header through
// unchanged, so one path reads both.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data.h"

#define IDX_TYPE_UBYTE 0x08
#define IDX_READ_CHUNK (1 << 20)             // bytes per gzread call
#define IDX_MAX_BYTES ((int64_t)1 << 40)     // larger promises are corrupt headers, not data sets

static const char *idx_type_name(int type) {
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "not an IDX type";
    }
}

// "60000x28x28"
static void idx_dims_str(char *buf, size_t size, const int64_t *dims, int ndim) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? "x%lld" : "%lld", (long long)dims[i]);
}

// Reads up to n bytes, looping over gzread's int-sized calls. Returns the count read (short at the end of the
// data; *cut is set when a gzip stream ended before its trailer) or -1 when zlib reports an error, which then
// goes into err.
static int64_t idx_read_bytes(gzFile f, const char *path, uint8_t *buf, int64_t n, bool *cut, nd_error *err) {
    int64_t got = 0;
    while (got < n) {
        unsigned want = (unsigned)(n - got < IDX_READ_CHUNK ? n - got : IDX_READ_CHUNK);
        int r = gzread(f, buf + got, want);
        if (r > 0) got += r;
        if (r == (int)want) continue;
        int code;
        const char *msg = gzerror(f, &code);
        if (code == Z_BUF_ERROR) {
            *cut = true;
        } else if (code == Z_ERRNO) {
            nd_error_set(err, "%s: read error: %s", path, strerror(errno));
            return -1;
        } else if (code == Z_MEM_ERROR) {
            nd_error_set(err, "%s: out of memory while decompressing", path);
            return -1;
        } else if (code != Z_OK) {
            // zlib prefixes its message with the path, which ours already leads with.
            size_t path_len = strlen(path);
            if (strncmp(msg, path, path_len) == 0 && strncmp(msg + path_len, ": ", 2) == 0) msg += path_len + 2;
            nd_error_set(err, "%s: corrupt gzip data: %s (the file is damaged: download or reinstall it)", path,
                         msg);
            return -1;
        }
        return got;
    }
    return got;
}

// Parses the magic, type, rank and dimensions.
static bool idx_read_header(gzFile f, const char *path, nd_idx *out, nd_error *err) {
    uint8_t magic[4];
    bool cut = false;
    int64_t got = idx_read_bytes(f, path, magic, 4, &cut, err);
    if (got < 0) return false;
    if (got < 4)
        return nd_error_set(err, "%s: truncated header: file holds %lld bytes, an IDX header needs at least 4%s",
                            path, (long long)got, cut ? " (the gzip stream ends early)" : "");
    if (magic[0] != 0 || magic[1] != 0)
        return nd_error_set(err,
                            "%s: bad magic 0x%02X%02X%02X%02X: expected 0x0000 followed by type and rank "
                            "(e.g. 0x00000803 for images); this is not an IDX file",
                            path, magic[0], magic[1], magic[2], magic[3]);
    if (magic[2] != IDX_TYPE_UBYTE)
        return nd_error_set(err, "%s: element type 0x%02X (%s): expected 0x08 (unsigned byte)", path, magic[2],
                            idx_type_name(magic[2]));
    int ndim = magic[3];
    if (ndim < 1 || ndim > ND_IDX_MAX_DIMS)
        return nd_error_set(err, "%s: bad rank %d in the magic number: expected 1 to %d dimensions", path, ndim,
                            ND_IDX_MAX_DIMS);
    uint8_t raw[4 * ND_IDX_MAX_DIMS];
    got = idx_read_bytes(f, path, raw, 4 * ndim, &cut, err);
    if (got < 0) return false;
    if (got < 4 * ndim)
        return nd_error_set(err, "%s: truncated header: rank %d needs %d bytes of dimensions, file holds %lld%s",
                            path, ndim, 4 * ndim, (long long)got, cut ? " (the gzip stream ends early)" : "");
    out->ndim = ndim;
    out->numel = 1;
    for (int i = 0; i < ndim; i++) {
        const uint8_t *b = raw + 4 * i;
        out->dims[i] = (int64_t)b[0] << 24 | (int64_t)b[1] << 16 | (int64_t)b[2] << 8 | (int64_t)b[3];
        if (out->dims[i] == 0)
            return nd_error_set(err, "%s: dimension %d of %d is 0: expected a positive size", path, i, ndim);
        if (out->numel > IDX_MAX_BYTES / out->dims[i])
            return nd_error_set(err, "%s: header promises more than %lld bytes: expected a plausible size "
                                "(the header is corrupt)", path, (long long)IDX_MAX_BYTES);
        out->numel *= out->dims[i];
    }
    return true;
}

// Reads the data the header promises, growing the buffer as bytes arrive so a corrupt header that promises
// more than the file holds costs no more memory than the file.
static bool idx_read_data(gzFile f, const char *path, nd_idx *out, nd_error *err) {
    char dims[128];
    idx_dims_str(dims, sizeof dims, out->dims, out->ndim);
    int64_t header_bytes = 4 + 4 * (int64_t)out->ndim, got = 0, cap = 0;
    bool cut = false;
    while (got < out->numel) {
        if (got == cap) {
            cap = cap ? cap * 2 : IDX_READ_CHUNK;
            if (cap > out->numel) cap = out->numel;
            uint8_t *grown = realloc(out->data, (size_t)cap);
            if (!grown) return nd_error_set(err, "%s: out of memory for %lld bytes", path, (long long)cap);
            out->data = grown;
        }
        int64_t r = idx_read_bytes(f, path, out->data + got, cap - got, &cut, err);
        if (r < 0) return false;
        got += r;
        if (got < cap) break;
    }
    if (got < out->numel)
        return nd_error_set(err, "%s: truncated: header promises %s (%lld bytes) after the %lld-byte header, "
                            "file holds %lld%s",
                            path, dims, (long long)out->numel, (long long)header_bytes, (long long)got,
                            cut ? " (the gzip stream ends early)" : "");
    uint8_t extra[4096];
    int64_t trailing = 0;
    for (;;) {
        int64_t r = idx_read_bytes(f, path, extra, sizeof extra, &cut, err);
        if (r < 0) return false;
        trailing += r;
        if (r < (int64_t)sizeof extra) break;
    }
    if (cut) return nd_error_set(err, "%s: truncated: the gzip stream ends before its trailer", path);
    if (trailing > 0)
        return nd_error_set(err, "%s: %lld trailing bytes: header promises %s (%lld bytes) after the "
                            "%lld-byte header, the file holds more",
                            path, (long long)trailing, dims, (long long)out->numel, (long long)header_bytes);
    return true;
}

// torchvision's read_sn3_pascalvincent_tensor for unsigned bytes, with every field checked.
bool nd_idx_read(nd_idx *out, const char *path, nd_error *err) {
    memset(out, 0, sizeof *out);
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return nd_error_set(err, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    bool ok = idx_read_header(f, path, out, err) && idx_read_data(f, path, out, err);
    gzclose(f);
    if (!ok) nd_idx_free(out);
    return ok;
}

void nd_idx_free(nd_idx *idx) {
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}
