// SPDX-License-Identifier: MIT
// Argument helpers shared by the CLI commands: sizes with suffixes, whole numbers, usage errors.

import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake on the command line: printed with the command's usage, exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const SUFFIX: Record<string, number> = { '': 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/**
 * Parse a size, offset or length: `64M`, `10G`, `1536k`, `1.5K`, `4096`, `0x1000` (binary
 * units, like qemu-img) into bytes.
 */
export function parseSize(text: string, what: string): number {
  const t = text.trim();
  if (/^-\s*\d/.test(t)) throw new UsageError(`${what}: "${text}" is negative, expected bytes ≥ 0 or a number with K, M, G or T`);
  if (/^0x[0-9a-f]+$/i.test(t)) return parseCount(t, what);
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgtp]?)(?:i?b)?$/i.exec(t);
  if (!m) throw new UsageError(`${what}: "${text}" is not a size (expected bytes or a number with K, M, G or T, e.g. 64M)`);
  const bytes = Number(m[1]) * SUFFIX[m[2].toUpperCase()];
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`${what}: "${text}" is not a whole number of bytes`);
  return bytes;
}

/** Parse a non-negative whole number (decimal or 0x hex). */
export function parseCount(text: string, what: string): number {
  if (/^-\s*\d/.test(text.trim())) throw new UsageError(`${what}: "${text}" is negative, expected a whole number ≥ 0`);
  const n = /^0x[0-9a-f]+$/i.test(text) ? Number.parseInt(text, 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what}: "${text}" is not a whole number`);
  return n;
}

/** `n` and its noun, singular for 1: "1 cluster", "2 clusters", "1 leaked cluster". */
export function plural(n: number, noun: string, nouns = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : nouns}`;
}

/** Human-readable binary size. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${bytes} B` : `${Number.isInteger(v) ? v : v.toFixed(2)} ${units[u]}`;
}

export type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * `--size -1G` as `--size=-1G`: parseArgs refuses a value that starts with a dash as "ambiguous"
 * (it may be a forgotten value followed by an option), but a dash and a digit is no option here:
 * it reaches the option's parser, which says that a size cannot be negative.
 */
function joinNegativeValues(argv: string[], options: Options): string[] {
  const takesValue = (arg: string) => {
    const long = /^--([^=]+)$/.exec(arg);
    if (long) return options[long[1]]?.type === 'string';
    const short = /^-([^-])$/.exec(arg);
    return !!short && Object.values(options).some((o) => o.short === short[1] && o.type === 'string');
  };
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--') return out.concat(argv.slice(i));
    if (takesValue(argv[i]) && /^-\d/.test(argv[i + 1] ?? '')) out.push(`${argv[i]}=${argv[++i]}`.replace(/^-([^-])=/, '-$1'));
    else out.push(argv[i]);
  }
  return out;
}

/** parseArgs in strict mode, with `--help` added and errors turned into UsageErrors. */
export function parse(argv: string[], options: Options, positionals: { min: number; max: number; names: string }) {
  let parsed;
  try {
    parsed = parseArgs({ args: joinNegativeValues(argv, options), options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals: pos } = parsed;
  if (!values.help && (pos.length < positionals.min || pos.length > positionals.max)) {
    throw new UsageError(`expected ${positionals.names}, got ${pos.length === 0 ? 'nothing' : pos.map((p) => JSON.stringify(p)).join(' ')}`);
  }
  return { values: values as Record<string, string | boolean | undefined>, positionals: pos };
}

/** A required option's string value. */
export function required(values: Record<string, string | boolean | undefined>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string') throw new UsageError(`--${name} is required`);
  return v;
}
