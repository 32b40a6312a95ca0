// SPDX-License-Identifier: MIT
// The shape of one CLI command.

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Returns the exit status; -1 means "print my usage and exit 0" (for --help). */
  run(argv: string[]): Promise<number>;
}
