/*
 * sizing.h - CPU quota parsing, exposed for tests.
 */
#ifndef WALLS_SIZING_H
#define WALLS_SIZING_H

/* CPUs allowed by the cgroup CPU quota of the process described by
 * self_cgroup (a /proc/<pid>/cgroup file), with the cgroup file systems
 * mounted under root; 0 when there is no quota. Sets *source when it finds
 * one. */
int walls__cgroup_cpus(const char *self_cgroup, const char *root, const char **source);

#endif
