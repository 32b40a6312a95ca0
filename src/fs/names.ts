// SPDX-License-Identifier: MIT
// Checks on the names that filesystem readers hand to the path layer: a name must be usable as
// one path component, and text decoded from UTF-16 must be well formed to become UTF-8 later.

/** Why `name` cannot be one path component (empty, "." or "..", a "/" or NUL in it), or null if it can. */
export function nameProblem(name: string): string | null {
  if (name === '') return 'an empty name';
  if (name === '.' || name === '..') return `the name "${name}"`;
  if (name.includes('/')) return `a "/" in the name "${name}"`;
  if (name.includes('\0')) return 'a NUL in the name';
  return null;
}

/** `s` with unpaired surrogates (damaged or hostile UTF-16) replaced by U+FFFD. */
export function wellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}
