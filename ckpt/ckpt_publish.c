/* ckpt_publish.c: what rank 0 does with whole checkpoint directories: publish one (atomic
 * rename + the `latest` pointer), prune old ones, and resolve "latest" / a run dir / a root
 * to a step directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_internal.h"
#include "log.h"

/* Splits path into its parent directory and base name (trailing slashes ignored); -1 when
 * the base name is empty, "." or "..". */
static int split_path(const char *path, char *parent, char *base) {
    char p[CKPT_PATH_MAX];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) return -1;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    char *slash = strrchr(p, '/');
    const char *b = slash ? slash + 1 : p;
    if (!*b || !strcmp(b, ".") || !strcmp(b, "..")) return -1;
    snprintf(base, CKPT_PATH_MAX, "%s", b);
    if (!slash)
        snprintf(parent, CKPT_PATH_MAX, ".");
    else if (slash == p)
        snprintf(parent, CKPT_PATH_MAX, "/");
    else
        snprintf(parent, CKPT_PATH_MAX, "%.*s", (int)(slash - p), p);
    return 0;
}

static int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A base name `latest` may hold: printable, no slash, not "." or "..". */
static int base_name_ok(const char *s) {
    if (!*s || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == '/' || *s == 0x7f) return 0;
    return 1;
}

/* root/latest's base name into name (CKPT_PATH_MAX): 1 found, 0 absent, -1 unreadable or not
 * a base name (errno EINVAL). */
static int read_latest(const char *root, char *name) {
    char path[CKPT_PATH_MAX];
    if (ckpt_path(path, root, CKPT_LATEST)) return -1;
    char *buf;
    int64_t len;
    if (ckpt_read_all(path, CKPT_PATH_MAX - 1, &buf, &len)) return errno == ENOENT ? 0 : -1;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        buf[--len] = 0;
    int ok = (int64_t)strlen(buf) == len && base_name_ok(buf);
    if (ok) snprintf(name, CKPT_PATH_MAX, "%s", buf);
    free(buf);
    if (!ok) errno = EINVAL;
    return ok ? 1 : -1;
}

int qtx_ckpt_publish(const char *tmp_dir, const char *final_dir, qtx_err *e) {
    char parent[CKPT_PATH_MAX], base[CKPT_PATH_MAX], tparent[CKPT_PATH_MAX], tbase[CKPT_PATH_MAX];
    if (split_path(final_dir, parent, base) || !base_name_ok(base) ||
        split_path(tmp_dir, tparent, tbase))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: cannot publish %s there: not a usable directory name",
                        final_dir, tmp_dir);
    char path[CKPT_PATH_MAX];
    if (ckpt_path(path, tmp_dir, CKPT_MANIFEST) || !exists(path) ||
        ckpt_path(path, tmp_dir, CKPT_MANIFEST_CRC) || !exists(path))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: has no %s and %s: call qtx_ckpt_write_manifest before "
                        "qtx_ckpt_publish",
                        tmp_dir, CKPT_MANIFEST, CKPT_MANIFEST_CRC);
    const char *exists_msg = "checkpoint %s already exists: a published checkpoint is never "
                             "overwritten; move it away by hand or resume from it";
    if (exists(final_dir)) return qtx_fail(e, QTX_ERR_INPUT, exists_msg, final_dir);
    int rc = renameat2(AT_FDCWD, tmp_dir, AT_FDCWD, final_dir, RENAME_NOREPLACE);
    if (rc && (errno == ENOSYS || errno == EINVAL)) /* file system without RENAME_NOREPLACE */
        rc = exists(final_dir) ? (errno = EEXIST, -1) : rename(tmp_dir, final_dir);
    if (rc && errno == EEXIST) return qtx_fail(e, QTX_ERR_INPUT, exists_msg, final_dir);
    if (rc)
        return qtx_fail(e, QTX_ERR_RUNTIME,
                        "checkpoint %s: cannot rename %s to it: %s: both must be on one file "
                        "system, and the parent writable",
                        final_dir, tmp_dir, strerror(errno));
    if (ckpt_fsync_dir(parent) || (strcmp(parent, tparent) && ckpt_fsync_dir(tparent)))
        return qtx_fail(e, QTX_ERR_RUNTIME, "checkpoint %s: cannot sync %s: %s", final_dir, parent,
                        strerror(errno));

    /* latest: write latest.tmp, sync, rename over latest, sync the directory. Until the
     * rename, readers see the old latest, which still names a complete checkpoint. */
    char tmp[CKPT_PATH_MAX], latest[CKPT_PATH_MAX], text[CKPT_PATH_MAX + 2];
    int n = snprintf(text, sizeof text, "%s\n", base);
    if (ckpt_path(tmp, parent, CKPT_LATEST ".tmp") || ckpt_path(latest, parent, CKPT_LATEST) ||
        ckpt_write_file_sync(tmp, text, (size_t)n) || rename(tmp, latest) ||
        ckpt_fsync_dir(parent)) {
        int err = errno;
        unlink(tmp);
        return qtx_fail(e, QTX_ERR_RUNTIME,
                        "checkpoint %s: published, but updating %s/latest failed: %s: resume "
                        "from the directory by name",
                        final_dir, parent, strerror(err));
    }
    return QTX_OK;
}

/* ---- prune ---------------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int ckpt_remove_tree(const char *path) {
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

typedef struct step_dir {
    char name[256];
    int64_t step;
} step_dir;

static int newest_first(const void *a, const void *b) {
    const step_dir *x = a, *y = b;
    if (x->step != y->step) return x->step > y->step ? -1 : 1;
    return -strcmp(x->name, y->name);
}

/* "step_" then 1..18 digits: the step number; -1 otherwise. */
static int64_t step_of(const char *name) {
    if (strncmp(name, "step_", 5)) return -1;
    const char *d = name + 5;
    size_t n = strlen(d);
    if (n == 0 || n > 18 || strspn(d, "0123456789") != n) return -1;
    return strtoll(d, NULL, 10);
}

int qtx_ckpt_prune(const char *root, int keep, const char *protect, qtx_err *e) {
    DIR *d = opendir(root);
    if (!d)
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint root %s: cannot list: %s", root,
                        strerror(errno));
    char latest[CKPT_PATH_MAX] = "", pbase[CKPT_PATH_MAX] = "", pparent[CKPT_PATH_MAX];
    if (read_latest(root, latest) != 1) latest[0] = 0;
    if (protect && split_path(protect, pparent, pbase)) pbase[0] = 0;
    int n = 0, cap = 16, n_tmp = 0, cap_tmp = 16;
    step_dir *steps = qtx_malloc((size_t)cap * sizeof *steps);
    step_dir *tmps = qtx_malloc((size_t)cap_tmp * sizeof *tmps);
    const struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        int64_t step = step_of(nm);
        int tmp = !strncmp(nm, ".tmp_", 5);
        if ((step < 0 && !tmp) || strlen(nm) >= sizeof steps->name) continue;
        char path[CKPT_PATH_MAX];
        struct stat st;
        if (ckpt_path(path, root, nm) || lstat(path, &st) || !S_ISDIR(st.st_mode)) continue;
        if (tmp) {
            if (n_tmp == cap_tmp) tmps = qtx_realloc(tmps, (size_t)(cap_tmp *= 2) * sizeof *tmps);
            snprintf(tmps[n_tmp++].name, sizeof tmps->name, "%s", nm);
        } else {
            if (n == cap) steps = qtx_realloc(steps, (size_t)(cap *= 2) * sizeof *steps);
            snprintf(steps[n].name, sizeof steps->name, "%s", nm);
            steps[n++].step = step;
        }
    }
    closedir(d);
    qsort(steps, (size_t)n, sizeof *steps, newest_first);
    int rc = QTX_OK;
    for (int i = 0; i < n_tmp && rc == QTX_OK; i++) {
        char path[CKPT_PATH_MAX];
        if (ckpt_path(path, root, tmps[i].name) || ckpt_remove_tree(path))
            rc = qtx_fail(e, QTX_ERR_RUNTIME, "checkpoint root %s: cannot remove %s: %s", root,
                          tmps[i].name, strerror(errno));
        else
            qtx_log_info("checkpoint: removed %s/%s (left by an interrupted checkpoint)", root,
                         tmps[i].name);
    }
    for (int i = keep > 0 ? keep : n; i < n && rc == QTX_OK; i++) {
        const char *nm = steps[i].name;
        if (!strcmp(nm, pbase) || !strcmp(nm, latest)) continue;
        char path[CKPT_PATH_MAX], gone[CKPT_PATH_MAX], gname[CKPT_PATH_MAX];
        snprintf(gname, sizeof gname, ".tmp_prune_%s", nm);
        if (ckpt_path(path, root, nm) || ckpt_path(gone, root, gname) || rename(path, gone) ||
            ckpt_fsync_dir(root) || ckpt_remove_tree(gone))
            rc = qtx_fail(e, QTX_ERR_RUNTIME, "checkpoint root %s: cannot remove %s: %s", root, nm,
                          strerror(errno));
        else
            qtx_log_info("checkpoint: removed %s/%s (keeping the newest %d)", root, nm, keep);
    }
    free(steps);
    free(tmps);
    return rc;
}

/* ---- resolve -------------------------------------------------------------------------------- */

static int copy_out(char *out, size_t n, const char *s, qtx_err *e) {
    if (strlen(s) >= n)
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: path longer than %zu characters", s,
                        n - 1);
    memcpy(out, s, strlen(s) + 1);
    return QTX_OK;
}

static int from_latest(const char *root, char *out, size_t n, qtx_err *e) {
    char name[CKPT_PATH_MAX], path[CKPT_PATH_MAX];
    int k = read_latest(root, name);
    if (k == 0)
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint root %s has no latest: no checkpoint was published there; "
                        "pass a step directory instead",
                        root);
    if (k < 0)
        return qtx_fail(
            e, QTX_ERR_INPUT, "checkpoint root %s: %s/latest %s: pass a step directory instead",
            root, root, errno == EINVAL ? "does not hold one directory name" : strerror(errno));
    if (ckpt_path(path, root, name))
        return qtx_fail(e, QTX_ERR_INPUT, "checkpoint root %s: path too long", root);
    if (!is_dir(path))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint root %s: latest names %s, which is not a directory (deleted?); "
                        "pass a step directory instead",
                        root, name);
    return copy_out(out, n, path, e);
}

int qtx_ckpt_resolve(const char *what, const char *ckpt_root, char *out, size_t n, qtx_err *e) {
    char path[CKPT_PATH_MAX];
    if (!what || !strcmp(what, CKPT_LATEST)) {
        if (!ckpt_root)
            return qtx_fail(e, QTX_ERR_INPUT,
                            "checkpoint 'latest' needs a checkpoint root; pass a step directory");
        return from_latest(ckpt_root, out, n, e);
    }
    /* ROOT/latest itself: what it names */
    const size_t wl = strlen(what);
    if (wl >= 8 && !strcmp(what + wl - 7, "/" CKPT_LATEST) && exists(what) && !is_dir(what) &&
        wl - 7 < sizeof path) {
        memcpy(path, what, wl - 7);
        path[wl - 7] = '\0';
        return from_latest(path, out, n, e);
    }
    if (!is_dir(what))
        return qtx_fail(e, QTX_ERR_INPUT,
                        "checkpoint %s: no such directory; pass a step directory (e.g. "
                        "out/ckpt/step_00000010), a checkpoint root or a run's out_dir",
                        what);
    if (!ckpt_path(path, what, CKPT_MANIFEST) && exists(path)) return copy_out(out, n, what, e);
    if (!ckpt_path(path, what, CKPT_LATEST) && exists(path)) return from_latest(what, out, n, e);
    if (!ckpt_path(path, what, "ckpt/" CKPT_LATEST) && exists(path)) {
        if (ckpt_path(path, what, "ckpt"))
            return qtx_fail(e, QTX_ERR_INPUT, "checkpoint %s: path too long", what);
        return from_latest(path, out, n, e);
    }
    return qtx_fail(e, QTX_ERR_INPUT,
                    "checkpoint %s: not a checkpoint (no %s, latest or ckpt/latest in it); pass a "
                    "step directory (e.g. out/ckpt/step_00000010), a checkpoint root or a run's "
                    "out_dir",
                    what, CKPT_MANIFEST);
}
