/* SPDX-License-Identifier: MIT */
/*
 * Minimal test runner: each test binary lists its cases with TEST_LIST and
 * gets a main() that forks every case with a timeout and prints TAP.
 *
 *   static void t_foo(void) { CHECK(1 + 1 == 2); CHECK_EQ(x, 3); }
 *   TEST_MAIN(TEST(t_foo), TEST(t_bar))
 *
 * A case fails when a CHECK fails (the expression and values are printed),
 * when it crashes, or when it runs longer than TEST_TIMEOUT_S seconds.
 * Run one case: ./test_x t_foo.
 */
#ifndef VHK_TEST_H
#define VHK_TEST_H

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TEST_TIMEOUT_S
#define TEST_TIMEOUT_S 120
#endif

struct test_case {
	const char *name;
	void (*fn)(void);
};

#define TEST(f) {#f, f}

#define CHECK(e)                                                                               \
	do {                                                                                   \
		if (!(e)) {                                                                    \
			fprintf(stderr, "# %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #e); \
			fflush(stderr);                                                        \
			_exit(1);                                                              \
		}                                                                              \
	} while (0)

#define CHECK_EQ(a, b)                                                                         \
	do {                                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);                            \
		if (a_ != b_) {                                                                \
			fprintf(stderr, "# %s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n",  \
				__FILE__, __LINE__, #a, #b, a_, b_);                           \
			fflush(stderr);                                                        \
			_exit(1);                                                              \
		}                                                                              \
	} while (0)

static inline int test_run_main(const struct test_case *cases, size_t n, int argc, char **argv)
{
	int failed = 0, run = 0;

	setvbuf(stdout, NULL, _IONBF, 0);
	printf("TAP version 13\n");
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		if (argc < 2 || !strcmp(argv[1], cases[i].name))
			total++;
	printf("1..%zu\n", total);
	for (size_t i = 0; i < n; i++) {
		if (argc >= 2 && strcmp(argv[1], cases[i].name))
			continue;
		run++;
		pid_t pid = fork();
		if (pid == 0) {
			alarm(TEST_TIMEOUT_S);
			cases[i].fn();
			fflush(NULL);
			/* exit(), not _exit(): LeakSanitizer checks at exit. */
			exit(0);
		}
		int st = 0;
		while (waitpid(pid, &st, 0) < 0)
			;
		int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
		if (!ok) {
			failed++;
			if (WIFSIGNALED(st))
				fprintf(stderr, "# %s: killed by signal %d%s\n", cases[i].name,
					WTERMSIG(st), WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
		}
		printf("%s %d - %s\n", ok ? "ok" : "not ok", run, cases[i].name);
	}
	return failed ? 1 : 0;
}

#define TEST_MAIN(...)                                                                         \
	int main(int argc, char **argv)                                                        \
	{                                                                                      \
		static const struct test_case cases_[] = {__VA_ARGS__};                        \
		return test_run_main(cases_, sizeof(cases_) / sizeof(cases_[0]), argc, argv);  \
	}

#endif
