// nanodiff exercise: the course's exercises, each a C file with FIXME blanks (notebooks/exercises/NAME.c) and
// a checker (notebooks/exercises/check/NAME.c) that runs the student's functions on seeded inputs against
// the library and says what is wrong. `check` compiles the two together with this build's compiler and
// libraries and runs the result.
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "exercise_config.h"

// The first comment line of an exercise file: what it asks.
static void first_line(const char *path, char *buf, size_t size) {
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (fgets(buf, (int)size, f)) {
        buf[strcspn(buf, "\n")] = 0;
        if (strncmp(buf, "// ", 3) == 0) memmove(buf, buf + 3, strlen(buf + 3) + 1);
    }
    fclose(f);
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int list_exercises(void) {
    DIR *dir = opendir(ND_EXERCISE_DIR "/check");
    if (!dir) {
        fprintf(stderr, "nanodiff exercise: cannot read %s/check\n", ND_EXERCISE_DIR);
        return 1;
    }
    char *names[128];
    int n = 0;
    for (struct dirent *e; (e = readdir(dir)) && n < 128;) {
        size_t len = strlen(e->d_name);
        if (len > 2 && strcmp(e->d_name + len - 2, ".c") == 0) names[n++] = strndup(e->d_name, len - 2);
    }
    closedir(dir);
    qsort(names, (size_t)n, sizeof names[0], compare_names);
    printf("exercises in %s (check one with: nanodiff exercise check NAME [FILE]):\n", ND_EXERCISE_DIR);
    for (int i = 0; i < n; i++) {
        char path[1200], what[256];
        snprintf(path, sizeof path, "%s/%s.c", ND_EXERCISE_DIR, names[i]);
        first_line(path, what, sizeof what);
        printf("  %-18s %s\n", names[i], what);
        free(names[i]);
    }
    return 0;
}

// Lines of file that still hold FIXME outside a // comment.
static int count_fixmes(const char *path, char *lines, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[1024];
    int n = 0, number = 0;
    lines[0] = 0;
    while (fgets(line, sizeof line, f)) {
        number++;
        char *comment = strstr(line, "//");
        if (comment) *comment = 0;
        if (strstr(line, "FIXME")) {
            n++;
            size_t used = strlen(lines);
            snprintf(lines + used, size - used, "%s%d", n > 1 ? ", " : "", number);
        }
    }
    fclose(f);
    return n;
}

// Splits a '|'-separated list into argv entries (in place); returns how many were added.
static int split_into(char *list, char **argv, int at) {
    int n = 0;
    for (char *tok = strtok(list, "|"); tok; tok = strtok(NULL, "|"))
        if (*tok) argv[at + n++] = tok;
    return n;
}

// Runs argv with stdout and stderr into log (when not NULL); returns the exit status, or 128 + the signal.
static int run(char **argv, const char *log) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (log) {
            FILE *f = freopen(log, "w", stdout);
            if (!f || dup2(fileno(stdout), 2) < 0) _exit(127);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s\n", argv[0]);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0) return 127;
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static void print_file(const char *path, int max_lines) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[1024];
    for (int i = 0; fgets(line, sizeof line, f); i++) {
        if (i == max_lines) {
            printf("  ...\n");
            break;
        }
        printf("  %s", line);
    }
    fclose(f);
}

static int check_exercise(const char *name, const char *file) {
    char checker[1200], default_file[1200];
    snprintf(checker, sizeof checker, "%s/check/%s.c", ND_EXERCISE_DIR, name);
    snprintf(default_file, sizeof default_file, "%s/%s.c", ND_EXERCISE_DIR, name);
    struct stat st;
    if (strchr(name, '/') || stat(checker, &st) != 0) {
        fprintf(stderr, "nanodiff exercise: no exercise named \"%s\" (nanodiff exercise list shows them)\n", name);
        return 1;
    }
    if (!file) file = default_file;
    if (stat(file, &st) != 0) {
        fprintf(stderr, "nanodiff exercise: %s: no such file\n", file);
        return 1;
    }
    printf("checking %s (exercise %s)\n", file, name);
    char lines[256];
    int fixmes = count_fixmes(file, lines, sizeof lines);
    if (fixmes) printf("note: FIXME still on line%s %s\n", fixmes > 1 ? "s" : "", lines);

    char dir[] = "/tmp/nanodiff-exercise-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("nanodiff exercise: mkdtemp");
        return 1;
    }
    char program[64], log[64], define[128], flags[] = ND_EXERCISE_FLAGS, libs[] = ND_EXERCISE_LIBS;
    snprintf(program, sizeof program, "%s/check", dir);
    snprintf(log, sizeof log, "%s/cc.log", dir);
    snprintf(define, sizeof define, "-DND_EXERCISE_NAME=\"%s\"", name);
    char *argv[128];
    int n = 0;
    argv[n++] = ND_EXERCISE_CC;
    n += split_into(flags, argv, n);
    argv[n++] = define;
    argv[n++] = (char *)file;
    argv[n++] = checker;
    argv[n++] = "-o";
    argv[n++] = program;
    n += split_into(libs, argv, n);
    argv[n] = NULL;
    int rc = run(argv, log);
    if (rc != 0) {
        printf("FAIL: %s does not compile with the checker:\n", file);
        print_file(log, 30);
    } else {
        char *check_argv[] = {program, NULL};
        rc = run(check_argv, NULL);
        if (rc > 128)
            printf("FAIL: the check stopped with signal %d (%s)\n", rc - 128, strsignal(rc - 128));
        else
            printf("%s: exercise %s\n", rc == 0 ? "PASS" : "FAIL", name);
    }
    unlink(program);
    unlink(log);
    rmdir(dir);
    return rc == 0 ? 0 : 1;
}

int nd_cmd_exercise(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[2], "list") == 0) return list_exercises();
    if ((argc == 4 || argc == 5) && strcmp(argv[2], "check") == 0)
        return check_exercise(argv[3], argc == 5 ? argv[4] : NULL);
    fprintf(stderr,
            "usage: nanodiff exercise list\n"
            "       nanodiff exercise check NAME [FILE]   (FILE: your copy of %s/NAME.c)\n"
            "  builds FILE with the exercise's checker and says PASS, or what is wrong\n",
            ND_EXERCISE_DIR);
    return argc >= 3 && strcmp(argv[2], "--help") == 0 ? 0 : 1;
}
