/*
 * `zring check FILE`: validate a workload config without starting zring.
 */
#ifndef ZRING_CHECK_H
#define ZRING_CHECK_H

#include <stdio.h>

#include "zring/config.h"

/*
 * The `check` subcommand; argv[0] is "check" (main passes argc - 1,
 * argv + 1). Returns the exit status: 0 valid, 1 invalid or unreadable,
 * 2 usage error.
 */
int check_main(int argc, char **argv);

/* Validate the file at path ("-" is stdin): a summary on out and 0, or
 * every error on err and 1. Quiet prints nothing when valid. */
int check_run(const char *path, bool quiet, FILE *out, FILE *err);

/* The summary check_run prints: counts by kind. */
void check_summary(const struct config *cfg, const char *source, FILE *out);

#endif
