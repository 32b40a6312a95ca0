// SPDX-License-Identifier: MIT
// One writer per image file or disk folder across processes (Node), readers allowed. The lock
// is the kernel's, as QEMU's and the ploop tools' are: a holder that dies (SIGKILL, power cut)
// leaves nothing behind, since the kernel drops a lock with the holder's last descriptor of
// the file, and there is no lock file whose age would have to be guessed.
//
// Node has no flock(2) or fcntl(2). flock(1) (util-linux, busybox) is handed our descriptor as
// its fd 3 and locks it (`flock -x -n 3`): a flock(2) lock belongs to the open file description,
// which this process keeps open after flock(1) has exited, so the lock lasts until the store
// closes the file or the process dies. Descriptors are opened close-on-exec, so no other child
// process inherits (and keeps) the lock. Debian's ploop 1.15 takes the same kind of lock on a
// disk folder's DiskDescriptor.xml.lck (flock LOCK_EX, waiting up to 60 s): each side sees
// the other's.
//
// Who holds a lock: /proc/locks lists the locks on each inode, but the pid it shows is
// flock(1)'s (gone by then) or -1 (QEMU's OFD locks). The "lock:" lines of /proc/PID/fdinfo/FD
// show which process has the locked descriptor open; that scan runs only when a lock is found.
//
// QEMU takes OFD read locks on bytes 100 + n for the permissions it holds (101: write) and on
// bytes 200 + n for those it denies others (201: write; a plain `qemu-img check` denies
// writers). A writer here is refused while either is held; a reader is told about 101.

import { readFile } from 'node:fs/promises';
import { fstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { writerRefused, type LockedThing } from './in-use.js';

const QEMU_WRITE_HELD_BYTE = 101;
const QEMU_WRITE_DENIED_BYTE = 201;
/** /proc/PID/stat counts in clock ticks of 1/USER_HZ s; USER_HZ is 100 on Linux's ABIs. */
const USER_HZ = 100;
const COMMAND_CHARS = 160;
/** The kinds of lock /proc/locks names: ours and ploop's, and QEMU's (OFD) or other byte-range ones. */
const FLOCK = ['FLOCK'];
const BYTE_LOCKS = ['OFDLCK', 'POSIX'];

interface KernelLock {
  /** FLOCK, OFDLCK, POSIX, LEASE or DELEG. */
  kind: string;
  write: boolean;
  start: number;
  end: number;
}

/** The name /proc/locks gives an inode: major:minor:inode (major and minor in hex). */
function inodeKey(dev: bigint, ino: bigint): string {
  // glibc's encoding of st_dev (gnu_dev_major / gnu_dev_minor).
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const hex = (n: bigint) => n.toString(16).padStart(2, '0');
  return `${hex(major)}:${hex(minor)}:${ino}`;
}

function keyOf(target: number | string): string | null {
  try {
    const s = typeof target === 'number' ? fstatSync(target, { bigint: true }) : statSync(target, { bigint: true });
    return inodeKey(s.dev, s.ino);
  } catch {
    return null;
  }
}

/** The locks held on the inode `key` (waiters left out), or null where /proc/locks does not exist. */
async function locksOn(key: string): Promise<KernelLock[] | null> {
  let text: string;
  try {
    text = await readFile('/proc/locks', 'utf8');
  } catch {
    return null;
  }
  const locks: KernelLock[] = [];
  for (const line of text.split('\n')) {
    // "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146317 0 EOF"; a waiter has "->" after the number.
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[1] === '->' || f[5] !== key) continue;
    locks.push({ kind: f[1], write: f[3] === 'WRITE', start: Number(f[6]), end: f[7] === 'EOF' ? Infinity : Number(f[7]) });
  }
  return locks;
}

const covers = (lock: KernelLock, byte: number) => lock.start <= byte && byte <= lock.end;

/** A lock that says someone writes the file: our flock, or QEMU holding its write permission. */
const isWriterLock = (lock: KernelLock) => (lock.kind === 'FLOCK' ? lock.write : covers(lock, QEMU_WRITE_HELD_BYTE));

/** A byte-range lock that keeps a writer out: QEMU writing, or denying others the right to. */
const keepsWritersOut = (lock: KernelLock) => lock.kind !== 'FLOCK' && (covers(lock, QEMU_WRITE_HELD_BYTE) || covers(lock, QEMU_WRITE_DENIED_BYTE));

/** Whether some descriptor of process `pid` holds a lock of one of `kinds` on inode `key` (its fdinfo says so). */
function holdsLock(pid: string, key: string, kinds: readonly string[]): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fdinfo`);
  } catch {
    return false; // gone, or another user's
  }
  for (const fd of fds) {
    let info: string;
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    // "lock:\t1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146317 0 EOF"
    for (const line of info.split('\n')) {
      if (line.startsWith('lock:') && line.includes(` ${key} `) && kinds.some((k) => line.includes(` ${k} `))) return true;
    }
  }
  return false;
}

/** When process `pid` started, from /proc/PID/stat and the boot time in /proc/stat. */
function startedAt(pid: number): Date | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, in parentheses): 3 = state … 22 = starttime.
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const boot = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    return Number.isFinite(ticks) && Number.isFinite(boot) ? new Date((boot + ticks / USER_HZ) * 1000) : null;
  } catch {
    return null;
  }
}

function describeProcess(pid: number): string {
  let command = '';
  try {
    command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    // gone meanwhile
  }
  if (command.length > COMMAND_CHARS) command = `${command.slice(0, COMMAND_CHARS - 1)}…`;
  const since = startedAt(pid);
  const who = pid === process.pid ? `this process, pid ${pid}` : `pid ${pid}`;
  return `${who} on host ${hostname()}${command ? `: ${command}` : ''}${since ? `, running since ${since.toISOString().replace(/\.\d+Z$/, 'Z')}` : ''}`;
}

/**
 * Who holds the locks of `kinds` on inode `key`: the processes whose descriptors carry them
 * (this process first, then the others in /proc), or a sentence for a holder that cannot be seen.
 */
function describeHolders(key: string, kinds: readonly string[]): string {
  const pids: number[] = [];
  if (holdsLock('self', key, kinds)) pids.push(process.pid);
  let entries: string[] = [];
  try {
    // An exclusive flock has one holder: found here, no need to look further.
    if (!(pids.length && kinds === FLOCK)) entries = readdirSync('/proc');
  } catch {
    // no /proc
  }
  for (const name of entries) {
    if (/^\d+$/.test(name) && Number(name) !== process.pid && holdsLock(name, key, kinds)) pids.push(Number(name));
  }
  if (pids.length === 0) return 'a process not visible from here: another user\'s, another container\'s or another host\'s';
  return pids.map(describeProcess).join('; ');
}

type FlockOutcome = { state: 'locked' } | { state: 'busy' } | { state: 'unavailable'; why: string };

/** Run `flock -x -n 3` with `fd` as its fd 3. */
async function flockExclusive(fd: number): Promise<FlockOutcome> {
  // Imported here: commands that only read never start a child process.
  const { spawn } = await import('node:child_process');
  return new Promise((resolve) => {
    let stderr = '';
    const child = spawn('flock', ['-x', '-n', '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    child.on('error', (e: NodeJS.ErrnoException) => resolve({ state: 'unavailable', why: e.code === 'ENOENT' ? 'flock(1) from util-linux is not installed' : `flock(1) failed to start: ${e.message}` }));
    child.on('close', (code) => {
      if (code === 0) resolve({ state: 'locked' });
      // With -n, exit status 1 and nothing said is "someone else holds it".
      else if (code === 1 && stderr.trim() === '') resolve({ state: 'busy' });
      else resolve({ state: 'unavailable', why: `flock(1) exited ${code}: ${stderr.trim()}` });
    });
  });
}

let toldUnavailable = false;

/**
 * Lock the file open as `fd` for one writer (`label` names it in messages), or throw EBUSY
 * naming who holds it: another writer here (this process or another), ploop, or QEMU. The lock
 * goes with the descriptor: closing it (or dying) releases it. Returns a warning when no lock
 * could be taken (no flock(1) on this system), said once per process, else null.
 */
export async function lockForWriting(fd: number, what: LockedThing, label: string): Promise<string | null> {
  const flock = await flockExclusive(fd);
  const key = keyOf(fd);
  if (flock.state === 'busy') {
    throw writerRefused(what, label, key ? describeHolders(key, FLOCK) : 'another process');
  }
  const locks = key ? await locksOn(key) : null;
  if (key && locks?.some(keepsWritersOut)) {
    throw writerRefused(what, label, `${describeHolders(key, BYTE_LOCKS)}, which keeps writers out with QEMU's byte locks`);
  }
  if (flock.state === 'unavailable' && !toldUnavailable) {
    toldUnavailable = true;
    return `${label} is opened for writing without a lock (${flock.why}): a second writer is not kept out`;
  }
  return null;
}

/** Who has `target` (a path, or a descriptor) open for writing, or null when nobody does (or this system cannot tell). */
export async function writerOf(target: number | string): Promise<string | null> {
  const key = keyOf(target);
  const locks = key ? await locksOn(key) : null;
  const writers = key ? locks?.filter(isWriterLock) : null;
  if (!key || !writers?.length) return null;
  return describeHolders(key, writers.some((l) => l.kind === 'FLOCK') ? FLOCK : BYTE_LOCKS);
}
