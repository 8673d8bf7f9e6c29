// `tsnet run`'s exit statuses, as container tools use them (podman, docker,
// sh): the workload's own status passes through; these mark the cases where
// the workload never ran.

/** tsnet itself failed: a bad flag, a missing prerequisite, the network or namespaces could not be set up. */
export const RUN_FAILED = 125;
/** CMD was found but cannot be executed (no execute permission, a directory). */
export const CMD_NOT_EXECUTABLE = 126;
/** CMD was not found. */
export const CMD_NOT_FOUND = 127;
