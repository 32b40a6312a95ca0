// A real Linux guest for v86, built from Debian packages (never stored in the repo): Debian's
// i386 kernel (linux-image-…-686), a busybox-static (i386) initramfs that loads the IDE disk
// modules (v86's controller is a PIIX3: ata_piix, sd_mod and what they depend on) and ext4, and
// SYSLINUX on a FAT partition; the root filesystem is an ext4 partition made with mkfs.ext4 -d.
//
// The guest (its /sbin/init on the ext4 root) prints what earlier boots wrote, appends a fresh
// token to /var/ploop/tokens, syncs, remounts the root read-only (the journal is clean, so
// e2fsck -fn of an export passes) and offers a shell on the serial console.
//
// The .debs and the built raw disk are cached in ~/.cache/ploop-wasm-guest ($XDG_CACHE_HOME, or
// $PLOOP_WASM_GUEST_CACHE): not under node_modules, which `npm ci` (.ci/run) empties. It
// survives between test runs, is shared by checkouts, and is rebuilt from nothing when missing.
// The disk's file name carries a hash of everything that goes into it besides the packages, so
// a change here builds a new one next to the old.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile, open } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { homedir } from 'node:os';
import { run, runOk } from './qemu.ts';
import { cli, cliCommand, describeCli } from './cli.ts';
import { spawn } from 'node:child_process';

export const GUEST_CACHE = process.env.PLOOP_WASM_GUEST_CACHE
  || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ploop-wasm-guest');

const MiB = 1 << 20;
/** The disk: MBR, a FAT16 boot partition from 1 MiB, the ext4 root after it. */
export const GUEST_DISK_BYTES = 96 * MiB;
export const FAT_OFFSET_BYTES = 1 * MiB;
export const FAT_BYTES = 20 * MiB;
export const EXT4_OFFSET_BYTES = FAT_OFFSET_BYTES + FAT_BYTES;
export const EXT4_BYTES = GUEST_DISK_BYTES - EXT4_OFFSET_BYTES;
/** Guest RAM: the 686 kernel and its 3 MiB initramfs boot in 48 MiB (SYSLINUX fails at 32). */
export const GUEST_MEMORY_BYTES = 48 * MiB;
const EXT4_BLOCK_BYTES = 4096;

/** What the guest prints on COM1 (each at the start of a line). */
export const GUEST = {
  /** The initramfs's first line: the first userspace line of a boot (the bench's finish line). */
  userspace: 'ploop-guest: userspace',
  /** The root's greeting file, printed by /sbin/init: "greeting: " + its first line. */
  greeting: 'ploop-guest: greeting: ',
  firstBoot: 'ploop-guest: no tokens yet (first boot)',
  found: 'ploop-guest: found token ',
  wrote: 'ploop-guest: wrote token ',
  /** The token is written, synced, and the root is read-only: the disk may be exported. */
  done: 'ploop-guest: done',
  /** Printed when the guest cannot go on (no root disk): a test stops waiting at once. */
  failed: 'ploop-guest: FAILED',
};
/**
 * The greeting as built into the root; a test may overwrite it in place (a snapshot's top delta
 * then holds the new one): `greetingBytes` keeps the file's size, the guest prints its first line.
 */
export const GREETING_FILE = '/etc/ploop-greeting';
export const BASE_GREETING = 'from the base image';
const GREETING_BYTES = 64;
export function greetingBytes(text: string): Uint8Array {
  if (text.length >= GREETING_BYTES || /[\n\x80-\uffff]/.test(text)) throw new Error(`greeting ${JSON.stringify(text)}: one ASCII line under ${GREETING_BYTES} bytes`);
  return new TextEncoder().encode(text + '\n'.repeat(GREETING_BYTES - text.length));
}
export const TOKENS_FILE = '/var/ploop/tokens';

/**
 * Kernel command line. Each addition after `quiet` saves boot time in v86 (measured with
 * initcall_debug): cryptomgr.notests skips the crypto self-tests (half the boot), noisapnp the
 * ISA PnP probe (0.85 s), initcall_blacklist two initcalls that take 1.5 s and 0.65 s there (kprobe
 * trace events, the KDF108 self-test), mitigations=off the page-table isolation and retpolines
 * that cost every syscall and interrupt in an emulator (the initramfs phase ran 35 % faster).
 */
export const KERNEL_APPEND = 'console=ttyS0 quiet cryptomgr.notests noisapnp initcall_blacklist=init_kprobe_trace,crypto_kdf108_init mitigations=off';

const INITRAMFS_MODULES = ['ata_piix', 'sd_mod', 'ext4'];

const INIT_RAMFS = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
echo "${GUEST.userspace} (initramfs, kernel $(uname -r), up $(cut -d' ' -f1 /proc/uptime) s)"
for m in $(cat /modules.order); do
  insmod "/modules/$m" || echo "ploop-guest: insmod $m failed"
done
i=0
while [ ! -b /dev/sda2 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /newroot
if ! mount -t ext4 /dev/sda2 /newroot; then
  echo "${GUEST.failed}: cannot mount /dev/sda2; block devices: $(ls /sys/block)"
  exec sh
fi
echo "ploop-guest: root /dev/sda2 (ext4) mounted after $i waits, switching to it (up $(cut -d' ' -f1 /proc/uptime) s)"
umount /sys /proc
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
`;

const INIT_ROOT = `#!/bin/sh
mount -t proc proc /proc
echo "${GUEST.greeting}$(head -n 1 ${GREETING_FILE})"
if [ -s ${TOKENS_FILE} ]; then
  while read -r t; do echo "${GUEST.found}$t"; done < ${TOKENS_FILE}
else
  echo "${GUEST.firstBoot}"
fi
t=$(cat /proc/sys/kernel/random/uuid)
echo "$t" >> ${TOKENS_FILE}
sync
mount -o remount,ro /
echo "${GUEST.wrote}$t"
echo "${GUEST.done}: the root is read-only again (mount -o remount,rw / to write). A shell on the serial console:"
exec setsid cttyhack sh
`;

const SYSLINUX_CFG = `SERIAL 0 115200
PROMPT 0
TIMEOUT 0
DEFAULT linux
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND ${KERNEL_APPEND}
`;

/** The built disk and where its parts are. */
export interface LinuxGuestDisk {
  /** Raw disk image (read-only: copy or convert it). */
  rawPath: string;
  kernelRelease: string;
  sizeBytes: number;
  /** Where the greeting file's bytes are on the disk. */
  greetingOffsetBytes: number;
}

interface BuildInfo {
  kernelRelease: string;
  greetingOffsetBytes: number;
}

function buildKey(): string {
  const h = createHash('sha256');
  // The build's own code is part of the key: changing how the disk is made makes a new one.
  for (const part of [INIT_RAMFS, INIT_ROOT, SYSLINUX_CFG, BASE_GREETING, INITRAMFS_MODULES.join(','), String(GUEST_DISK_BYTES), String(FAT_BYTES), String(EXT4_BLOCK_BYTES), buildDisk.toString(), rootTree.toString(), initramfs.toString(), moduleOrder.toString()]) h.update(part).update('\0');
  return h.digest('hex').slice(0, 12);
}

async function findFile(dir: string, pattern: RegExp): Promise<string | null> {
  if (!existsSync(dir)) return null;
  const hit = (await readdir(dir)).filter((n) => pattern.test(n)).sort().pop();
  return hit ? join(dir, hit) : null;
}

/** The cached .debs, downloaded with apt-get when missing. */
async function debs(): Promise<{ kernel: string; busybox: string }> {
  const dir = join(GUEST_CACHE, 'debs');
  const kernelPattern = /^linux-image-[\d.]+-\d+-686_.*_i386\.deb$/;
  const busyboxPattern = /^busybox-static_.*_i386\.deb$/;
  let kernel = await findFile(dir, kernelPattern);
  let busybox = await findFile(dir, busyboxPattern);
  if (kernel && busybox) return { kernel, busybox };
  const arches = await run('dpkg', ['--print-foreign-architectures']);
  if (!arches.stdout.split('\n').includes('i386')) {
    throw new Error('the Linux guest needs Debian\'s i386 packages: run .ci/run, or dpkg --add-architecture i386 && apt-get update');
  }
  // The meta-package names the current kernel package (linux-image-6.1.0-N-686).
  const depends = await runOk('apt-cache', ['depends', 'linux-image-686:i386']);
  const name = /Depends: (linux-image-[\d.]+-\d+-686)(:i386)?\b/.exec(depends.stdout)?.[1];
  if (!name) throw new Error(`apt-cache depends linux-image-686:i386 names no kernel package:\n${depends.stdout}`);
  const tmp = join(GUEST_CACHE, `debs.tmp-${process.pid}`);
  await mkdir(tmp, { recursive: true });
  try {
    const r = await run('sh', ['-c', `cd '${tmp}' && apt-get download ${name}:i386 busybox-static:i386`]);
    if (r.code !== 0) throw new Error(`apt-get download ${name}:i386 busybox-static:i386 failed (${r.code}): ${r.stderr}`);
    await mkdir(dir, { recursive: true });
    for (const f of await readdir(tmp)) await rename(join(tmp, f), join(dir, f));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  kernel = await findFile(dir, kernelPattern);
  busybox = await findFile(dir, busyboxPattern);
  if (!kernel || !busybox) throw new Error(`apt-get download left no kernel or busybox .deb in ${dir}`);
  return { kernel, busybox };
}

/**
 * The modules to load for `wanted`, dependencies first, each once: depmod indexes the unpacked
 * tree (the package ships no modules.dep) and modprobe --show-depends lists the insmod order,
 * soft dependencies (crc32c for ext4) included.
 */
async function moduleOrder(root: string, release: string, wanted: string[]): Promise<string[]> {
  await runOk('depmod', ['-b', root, release]);
  const order: string[] = [];
  for (const m of wanted) {
    const r = await runOk('modprobe', ['-d', root, '-S', release, '--show-depends', m]);
    for (const line of r.stdout.split('\n')) {
      const path = /^insmod (\S+)/.exec(line)?.[1];
      if (!path) continue;
      const inTree = relative(root, path.startsWith(root) ? path : join(root, path));
      // arch/x86/crypto holds the SSE4.2/AVX versions of crc32c & co.; v86 has no such CPU
      // features (insmod says "No such device") and the generic versions come along anyway.
      if (!order.includes(inTree) && !inTree.includes('/arch/x86/crypto/')) order.push(inTree);
    }
  }
  return order;
}

/** Build the initramfs (newc cpio, gzip) into `out`. */
async function initramfs(work: string, kernelRoot: string, release: string, busybox: string, out: string): Promise<void> {
  const dir = join(work, 'initramfs');
  for (const d of ['bin', 'dev', 'proc', 'sys', 'modules']) await mkdir(join(dir, d), { recursive: true });
  await copyFile(busybox, join(dir, 'bin/busybox'));
  await chmod(join(dir, 'bin/busybox'), 0o755);
  await writeFile(join(dir, 'init'), INIT_RAMFS, { mode: 0o755 });
  const names: string[] = [];
  for (const path of await moduleOrder(kernelRoot, release, INITRAMFS_MODULES)) {
    // busybox insmod may not read compressed modules: .ko.xz / .ko.zst go in decompressed.
    const base = path.split('/').pop()!.replace(/\.(xz|zst)$/, '');
    const src = join(kernelRoot, path);
    if (path.endsWith('.xz')) await runOk('sh', ['-c', `xz -dc '${src}' > '${join(dir, 'modules', base)}'`]);
    else if (path.endsWith('.zst')) await runOk('sh', ['-c', `zstd -dc '${src}' > '${join(dir, 'modules', base)}'`]);
    else await copyFile(src, join(dir, 'modules', base));
    names.push(base);
  }
  await writeFile(join(dir, 'modules.order'), names.join('\n') + '\n');
  await runOk('sh', ['-c', `cd '${dir}' && find . | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --quiet | gzip -9 > '${out}'`]);
}

/** The ext4 root's tree: busybox with its applet links, /sbin/init, the greeting, some modules. */
async function rootTree(work: string, kernelRoot: string, release: string, busybox: string): Promise<string> {
  const dir = join(work, 'root');
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'dev', 'proc', 'sys', 'tmp', 'var/ploop', 'root']) await mkdir(join(dir, d), { recursive: true });
  await copyFile(busybox, join(dir, 'bin/busybox'));
  await chmod(join(dir, 'bin/busybox'), 0o755);
  // The applet links busybox --install would make, made here so that the guest need not write.
  const list = await runOk(busybox, ['--list-full']).catch(() => null);
  const applets = list ? list.stdout.split('\n').filter(Boolean) : ['bin/sh', 'bin/mount', 'bin/cat', 'bin/echo', 'bin/sync', 'usr/bin/head', 'bin/setsid', 'bin/cttyhack', 'bin/ls'];
  for (const a of applets) {
    if (a === 'bin/busybox' || a === 'sbin/init' || a === 'linuxrc') continue;
    const target = relative(join(dir, a, '..'), join(dir, 'bin/busybox'));
    await mkdir(join(dir, a, '..'), { recursive: true });
    await symlink(target, join(dir, a)).catch(() => {});
  }
  await writeFile(join(dir, 'sbin/init'), INIT_ROOT, { mode: 0o755 });
  await writeFile(join(dir, GREETING_FILE), greetingBytes(BASE_GREETING));
  await writeFile(join(dir, 'etc/motd'), 'A ploop-wasm test guest: Debian\'s kernel, busybox, an ext4 root on a ploop disk.\n');
  // Real content a root filesystem carries and a boot does not read: a part of the kernel's
  // modules (with depmod's index, so that modprobe works in the shell).
  const modules = join(dir, 'lib/modules', release);
  await mkdir(join(modules, 'kernel'), { recursive: true });
  for (const sub of ['fs', 'lib', 'crypto', 'block', 'arch', 'net']) {
    const from = join(kernelRoot, 'lib/modules', release, 'kernel', sub);
    if (existsSync(from)) await cp(from, join(modules, 'kernel', sub), { recursive: true });
  }
  for (const f of await readdir(join(kernelRoot, 'lib/modules', release))) {
    if (f.startsWith('modules.')) await copyFile(join(kernelRoot, 'lib/modules', release, f), join(modules, f));
  }
  return dir;
}

async function buildDisk(out: string): Promise<void> {
  const { kernel, busybox } = await debs();
  const work = `${out}.work-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const kernelRoot = join(work, 'kernel');
    const busyboxRoot = join(work, 'busybox');
    await runOk('dpkg-deb', ['-x', kernel, kernelRoot]);
    await runOk('dpkg-deb', ['-x', busybox, busyboxRoot]);
    const release = (await readdir(join(kernelRoot, 'lib/modules')))[0];
    const busyboxBin = join(busyboxRoot, 'bin/busybox');
    const initrd = join(work, 'initrd.gz');
    await initramfs(work, kernelRoot, release, busyboxBin, initrd);

    // FAT16 boot partition with SYSLINUX, as a file; -h: its sectors before it on the disk.
    const fat = join(work, 'fat.img');
    const cfg = join(work, 'syslinux.cfg');
    const vmlinuz = join(work, 'vmlinuz');
    await writeFile(cfg, SYSLINUX_CFG);
    await copyFile(join(kernelRoot, 'boot', `vmlinuz-${release}`), vmlinuz);
    await runOk('mkfs.fat', ['-F', '16', '-n', 'PLOOPBOOT', '-h', String(FAT_OFFSET_BYTES / 512), '-C', fat, String(FAT_BYTES / 1024)]);
    await runOk('mcopy', ['-i', fat, cfg, vmlinuz, initrd, '::']);
    await runOk('syslinux', ['--install', fat]);

    // ext4 root; no lazy init: the guest should not spend its boot zeroing inode tables.
    const ext4 = join(work, 'root.ext4');
    const tree = await rootTree(work, kernelRoot, release, busyboxBin);
    await runOk('mkfs.ext4', ['-q', '-F', '-L', 'ploop-root', '-b', String(EXT4_BLOCK_BYTES), '-E', 'lazy_itable_init=0,lazy_journal_init=0', '-d', tree, ext4, `${EXT4_BYTES / 1024}k`]);

    // The disk: SYSLINUX's MBR code, the partition table, both partitions.
    const disk = join(work, 'disk.img');
    const handle = await open(disk, 'w');
    await handle.truncate(GUEST_DISK_BYTES);
    await handle.close();
    const table = `label: dos\nstart=${FAT_OFFSET_BYTES / 512}, size=${FAT_BYTES / 512}, type=6, bootable\nstart=${EXT4_OFFSET_BYTES / 512}, size=${EXT4_BYTES / 512}, type=83\n`;
    await runOk('sh', ['-c', `printf '%s' '${table}' | sfdisk -q '${disk}'`]);
    await runOk('dd', [`if=/usr/lib/syslinux/mbr/mbr.bin`, `of=${disk}`, 'bs=440', 'count=1', 'conv=notrunc', 'status=none']);
    await runOk('dd', [`if=${fat}`, `of=${disk}`, 'bs=1M', `seek=${FAT_OFFSET_BYTES / MiB}`, 'conv=notrunc,sparse', 'status=none']);
    await runOk('dd', [`if=${ext4}`, `of=${disk}`, 'bs=1M', `seek=${EXT4_OFFSET_BYTES / MiB}`, 'conv=notrunc,sparse', 'status=none']);
    const bmap = await runOk('debugfs', ['-R', `bmap ${GREETING_FILE} 0`, ext4]);
    const block = Number(bmap.stdout.trim());
    if (!Number.isSafeInteger(block) || block <= 0) throw new Error(`debugfs bmap ${GREETING_FILE}: ${bmap.stdout} ${bmap.stderr}`);
    const info: BuildInfo = { kernelRelease: release, greetingOffsetBytes: EXT4_OFFSET_BYTES + block * EXT4_BLOCK_BYTES };
    await rename(disk, out);
    await writeFile(`${out}.json`, JSON.stringify(info) + '\n');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The guest's raw disk, built once and cached. Concurrent test processes wait for the one that
 * builds (a lock directory; one older than 10 minutes is taken over).
 */
export async function linuxGuestDisk(): Promise<LinuxGuestDisk> {
  const out = join(GUEST_CACHE, `disk-${buildKey()}.img`);
  const lock = join(GUEST_CACHE, 'build.lock');
  await mkdir(GUEST_CACHE, { recursive: true });
  const started = Date.now();
  while (!existsSync(`${out}.json`)) {
    try {
      await mkdir(lock);
    } catch {
      const age = Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
      if (age > 10 * 60_000) await rm(lock, { recursive: true, force: true });
      if (Date.now() - started > 15 * 60_000) throw new Error(`the Linux guest disk was not built within 15 minutes (lock ${lock})`);
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    try {
      if (!existsSync(`${out}.json`)) await buildDisk(out);
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
  }
  const info = JSON.parse(await readFile(`${out}.json`, 'utf8')) as BuildInfo;
  return { rawPath: out, sizeBytes: GUEST_DISK_BYTES, ...info };
}

async function cliOk(args: string[], stdin?: Uint8Array): Promise<string> {
  const r = await cli(args, stdin);
  if (r.code !== 0) throw new Error(describeCli(args, r));
  return r.stdout.toString();
}

/**
 * The guest as a ploop disk folder, made by our CLI: `init`, the raw disk converted into
 * root.hds, then `snapshot` (root.hds is frozen, an empty delta becomes the top). With
 * `topGreeting`, the greeting file is rewritten in that top delta: the guest reads a stack.
 */
export async function guestFolder(dir: string, options: { clusterSize?: string; topGreeting?: string } = {}): Promise<LinuxGuestDisk> {
  const guest = await linuxGuestDisk();
  const clusterSize = options.clusterSize ?? '1M';
  await cliOk(['init', dir, '--size', String(guest.sizeBytes), '--cluster-size', clusterSize]);
  await cliOk(['convert', guest.rawPath, join(dir, 'root.hds'), '--from', 'raw', '--cluster-size', clusterSize]);
  await cliOk(['snapshot', dir]);
  if (options.topGreeting) await cliOk(['write', dir, '--offset', String(guest.greetingOffsetBytes)], greetingBytes(options.topGreeting));
  return guest;
}

/** The ext4 root partition of a raw disk image, copied out to `out`. */
export async function carveRootPartition(rawDisk: string, out: string): Promise<string> {
  await runOk('dd', [`if=${rawDisk}`, `of=${out}`, 'bs=1M', `skip=${EXT4_OFFSET_BYTES / MiB}`, `count=${EXT4_BYTES / MiB}`, 'status=none']);
  return out;
}

/**
 * e2fsck -fn must find the root clean (the guest remounted it read-only, so no journal
 * replay is pending), and the tokens file as debugfs reads it.
 */
export async function rootTokens(rootPartition: string): Promise<{ e2fsck: string; tokens: string[] }> {
  const fsck = await run('e2fsck', ['-fn', rootPartition]);
  if (fsck.code !== 0) throw new Error(`e2fsck -fn ${rootPartition} exited ${fsck.code}:\n${fsck.stdout}${fsck.stderr}`);
  const cat = await runOk('debugfs', ['-R', `cat ${TOKENS_FILE}`, rootPartition]);
  return { e2fsck: fsck.stdout, tokens: cat.stdout.split('\n').filter(Boolean) };
}

/** The tokens a boot's serial output reports: found (from earlier boots) and the one it wrote. */
export function serialTokens(serial: string): { found: string[]; wrote: string | null; firstBoot: boolean; greeting: string | null } {
  const lines = serial.replaceAll('\r', '').split('\n');
  const after = (prefix: string) => lines.filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length).trim());
  return {
    found: after(GUEST.found),
    wrote: after(GUEST.wrote)[0] ?? null,
    firstBoot: lines.includes(GUEST.firstBoot),
    greeting: after(GUEST.greeting)[0] ?? null,
  };
}

/**
 * `ploop-wasm boot TARGET --until "ploop-guest: done"` as a child process; stopped at once when
 * the guest reports a failure (instead of waiting out the timeout). Returns the serial output.
 */
export async function bootGuestCli(target: string, timeoutS: number): Promise<{ serial: string; seconds: number }> {
  const args = ['boot', target, '--until', GUEST.done, '--timeout', String(timeoutS), '--memory', `${GUEST_MEMORY_BYTES / MiB}M`];
  const started = performance.now();
  const child = spawn(process.execPath, [...(await cliCommand()), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let serial = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    serial += d.toString('latin1');
    if (serial.includes(GUEST.failed)) child.kill('SIGTERM');
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  if (code !== 0) throw new Error(`ploop-wasm ${args.join(' ')} exited ${code}\nserial: ${serial.slice(-3000)}\nstderr: ${stderr}`);
  return { serial, seconds: (performance.now() - started) / 1000 };
}
