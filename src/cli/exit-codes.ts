/**
 * The CLI's exit codes: stable, documented in docs/cli.md, and what scripts branch on.
 */
export const EXIT = {
  /** Done. */
  OK: 0,
  /** The broker refused the action (a 4xx problem: not allowed, invalid state, not found …). */
  REFUSED: 1,
  /** The command line is wrong: unknown command or option, missing argument, missing token. */
  USAGE: 2,
  /** The configuration file is invalid or unreadable. */
  CONFIG: 3,
  /** Audit verification ran and the log is not what was written. */
  AUDIT_FAILED: 4,
  /** The broker is unreachable or failed (a 5xx problem), or something failed unexpectedly. */
  UNAVAILABLE: 5,
  /**
   * A check ran and its answer is "not good": posture red, a drill failed, reconcile found drift,
   * a credential overdue for rotation, an envelope that needs attention, a simulated request
   * denied. Not a refusal: the command did what was asked (see docs/cli.md).
   */
  CHECK_FAILED: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
