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

// What the whole file holds, learnt before anything is allocated: the byte count after decompression (a
// header's promise is checked against it, so a corrupt header or a gzip bomb costs no memory), and for a gzip
// file the CRC-32 of those bytes.
typedef struct idx_extent {
    int64_t bytes; // uncompressed bytes, header included
    bool cut;      // a gzip stream that ended before its trailer
    uint32_t crc;
} idx_extent;

// Streams the whole content through a fixed buffer, from the start.
static bool idx_scan(gzFile f, const char *path, idx_extent *ext, nd_error *err) {
    uint8_t *chunk = malloc(IDX_READ_CHUNK);
    if (!chunk) return nd_error_set(err, "%s: out of memory", path);
    gzrewind(f);
    ext->bytes = 0, ext->cut = false, ext->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    for (;;) {
        int64_t r = idx_read_bytes(f, path, chunk, IDX_READ_CHUNK, &ext->cut, err);
        if (r < 0) {
            free(chunk);
            return false;
        }
        ext->crc = (uint32_t)crc32(ext->crc, chunk, (uInt)r);
        ext->bytes += r;
        if (r < IDX_READ_CHUNK) break;
    }
    free(chunk);
    return true;
}

// zlib checks each gzip member's trailer but skips bytes after the last member that do not start a new one;
// the file's own last 8 bytes (CRC-32 and length, little-endian) must describe the data read.
static bool idx_check_trailer(const char *path, const idx_extent *ext, nd_error *err) {
    FILE *raw = fopen(path, "rb");
    uint8_t t[8];
    bool got = raw && fseek(raw, -8, SEEK_END) == 0 && fread(t, 1, 8, raw) == 8;
    if (raw) fclose(raw);
    if (!got) return nd_error_set(err, "%s: cannot read the gzip trailer: %s", path, strerror(errno));
    uint32_t crc = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
    uint32_t isize = (uint32_t)t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 | (uint32_t)t[7] << 24;
    if (crc != ext->crc || isize != (uint32_t)ext->bytes)
        return nd_error_set(err, "%s: the gzip trailer (CRC 0x%08X, length %u) does not match the data read "
                            "(CRC 0x%08X, length %u): trailing garbage after the gzip stream, or a damaged file",
                            path, crc, isize, ext->crc, (uint32_t)ext->bytes);
    return true;
}

// Reads the data the header promises. The file's extent is checked against the promise first, so the
// buffer is allocated once, at the size the file really holds.
static bool idx_read_data(gzFile f, const char *path, nd_idx *out, nd_error *err) {
    char dims[128];
    idx_dims_str(dims, sizeof dims, out->dims, out->ndim);
    int64_t header_bytes = 4 + 4 * (int64_t)out->ndim;
    bool gzip = !gzdirect(f);
    idx_extent ext = {0};
    if (!idx_scan(f, path, &ext, err)) return false;
    int64_t held = ext.bytes - header_bytes;
    if (held < out->numel)
        return nd_error_set(err, "%s: truncated: header promises %s (%lld bytes) after the %lld-byte header, "
                            "file holds %lld%s",
                            path, dims, (long long)out->numel, (long long)header_bytes, (long long)held,
                            ext.cut ? " (the gzip stream ends early)" : "");
    if (ext.cut) return nd_error_set(err, "%s: truncated: the gzip stream ends before its trailer", path);
    if (held > out->numel)
        return nd_error_set(err, "%s: %lld trailing bytes: header promises %s (%lld bytes) after the "
                            "%lld-byte header, the file holds more",
                            path, (long long)(held - out->numel), dims, (long long)out->numel,
                            (long long)header_bytes);
    if (gzip && !idx_check_trailer(path, &ext, err)) return false;
    out->data = malloc((size_t)out->numel);
    if (!out->data) return nd_error_set(err, "%s: out of memory for %lld bytes", path, (long long)out->numel);
    bool cut = false;
    uint8_t header[4 + 4 * ND_IDX_MAX_DIMS];
    gzrewind(f);
    if (idx_read_bytes(f, path, header, header_bytes, &cut, err) != header_bytes) goto changed;
    if (idx_read_bytes(f, path, out->data, out->numel, &cut, err) != out->numel) goto changed;
    return true;
changed:
    return nd_error_set(err, "%s: the file changed while it was read", path);
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
