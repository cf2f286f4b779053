// Atomic file writes: every file nanodiff writes (checkpoints, caches, PNGs, HDF5 samples, JSON reports)
// appears whole or not at all. The content goes to a temporary file in the target's directory, is flushed and
// fsynced, renamed over the target, and the directory is fsynced so the rename itself survives a crash.
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"

bool nd_atomic_open(nd_atomic_file *af, const char *path, nd_error *err) {
    memset(af, 0, sizeof *af);
    if (snprintf(af->path, sizeof af->path, "%s", path) >= (int)sizeof af->path ||
        snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%d.XXXXXX", path, (int)getpid()) >= (int)sizeof af->tmp)
        return nd_error_set(err, "%s: path too long (at most %zu bytes)", path, sizeof af->path - 1);
    int fd = mkstemp(af->tmp);
    if (fd < 0)
        return nd_error_set(err, "%s: cannot write: creating the temporary file failed: %s", path, strerror(errno));
    fchmod(fd, 0644); // mkstemp's 0600 would hide the file from other readers
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        return nd_error_set(err, "%s: cannot write: opening the temporary file failed: %s", path, strerror(e));
    }
    return true;
}

void nd_atomic_abort(nd_atomic_file *af) {
    if (!af->f) return;
    fclose(af->f);
    unlink(af->tmp);
    af->f = NULL;
}

// fsync of the directory holding path. A directory that cannot be opened for syncing (some file systems)
// leaves the file complete, only the rename's durability unproven.
static void sync_parent_dir(const char *path) {
    char dir[4096] = ".";
    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t len = slash == path ? 1 : (size_t)(slash - path);
        if (len >= sizeof dir) return;
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

bool nd_atomic_commit(nd_atomic_file *af, nd_error *err) {
    if (!af->f) return nd_error_set(err, "%s: cannot write: the file was not opened", af->path);
    errno = 0;
    const char *step = "writing";
    bool ok = !ferror(af->f);
    if (ok) step = "flushing", ok = fflush(af->f) == 0;
    if (ok) step = "syncing", ok = fsync(fileno(af->f)) == 0;
    int e = errno;
    if (fclose(af->f) != 0 && ok) step = "closing", ok = false, e = errno;
    af->f = NULL;
    if (ok && rename(af->tmp, af->path) != 0) step = "renaming", ok = false, e = errno;
    if (!ok) {
        unlink(af->tmp);
        return nd_error_set(err, "%s: cannot write: %s failed: %s", af->path, step,
                            e ? strerror(e) : "out of space or an I/O error");
    }
    sync_parent_dir(af->path);
    return true;
}

bool nd_atomic_write(const char *path, const void *data, size_t size, nd_error *err) {
    nd_atomic_file af;
    if (!nd_atomic_open(&af, path, err)) return false;
    if (size && fwrite(data, 1, size, af.f) != size) {
        int e = errno;
        nd_atomic_abort(&af);
        return nd_error_set(err, "%s: cannot write: writing failed: %s", path, e ? strerror(e) : "I/O error");
    }
    return nd_atomic_commit(&af, err);
}

// A temporary file of path's left by a process that died mid-write: "<name>.tmp.<pid>[.XXXXXX]" whose pid no
// longer runs (kill(pid, 0) says ESRCH). Another live writer's file is left alone.
static bool stale_temporary(const char *entry, const char *base) {
    size_t len = strlen(base);
    if (strncmp(entry, base, len) != 0 || strncmp(entry + len, ".tmp.", 5) != 0) return false;
    char *end;
    long pid = strtol(entry + len + 5, &end, 10);
    if (end == entry + len + 5 || (*end != '\0' && *end != '.') || pid <= 0) return false;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int nd_atomic_clean_stale(const char *path) {
    char dir[1024] = ".";
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    if (slash && (size_t)(slash - path) < sizeof dir) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash == path ? 1 : slash - path] = '\0';
    }
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char full[2048];
        if (!stale_temporary(e->d_name, base)) continue;
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        if (unlink(full) == 0) removed++;
    }
    closedir(d);
    return removed;
}
