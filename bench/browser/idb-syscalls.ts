// SPDX-License-Identifier: MIT
// What Chromium's IndexedDB does on disk for one batched transaction vs one transaction per
// chunk, at 32 KiB (the IdbStore's chunk) and 64 KiB values, with strict durability: strace on
// every process of a headless Chromium counts files created (Blob files next to the database),
// fdatasync/fsync calls and bytes written on IndexedDB's files in each phase. Counts, not timings: they do not
// depend on the load of the machine, and they explain the timings of bench/browser.ts.
// Run: node --import tsx bench/browser/idb-syscalls.ts (needs strace and npm run build).

import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startBrowser } from '../../test/helpers/browser.js';
import { makeTempDir } from '../../test/helpers/tmp.js';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const BYTES = 2 << 20;

// Runs on the page as written (a string: no transpiler helpers).
const PAGE = `(async () => {
  const k = await import('/idb-keyval/index.js');
  const strict = (db) => {
    let dbp;
    const open = () => dbp ??= new Promise((res, rej) => {
      const r = indexedDB.open(db);
      r.onupgradeneeded = () => r.result.createObjectStore('s');
      r.onsuccess = () => res(r.result);
      r.onerror = () => rej(r.error);
    });
    return (mode, cb) => open().then((d) => cb(d.transaction('s', mode, { durability: 'strict' }).objectStore('s')));
  };
  const random = (n) => { const u = new Uint8Array(n); for (let o = 0; o < n; o += 65536) crypto.getRandomValues(u.subarray(o, o + 65536)); return u; };
  const phases = [];
  for (const kib of [32, 64]) {
    const store = strict('syscalls-' + kib);
    await k.set('warm', 1, store);
    const values = Array.from({ length: ${BYTES} / (kib << 10) }, () => random(kib << 10));
    const phase = async (name, fn) => {
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now() / 1000;
      const p0 = performance.now();
      await fn();
      phases.push({ name, chunks: values.length, t0, t1: Date.now() / 1000, ms: performance.now() - p0 });
    };
    await phase(kib + ' KiB values, one setMany', () => k.setMany(values.map((v, i) => [i, v]), store));
    await phase(kib + ' KiB values, one set() each', async () => { for (let i = 0; i < values.length; i++) await k.set(1000 + i, values[i], store); });
  }
  return phases;
})()`;

interface Phase { name: string; chunks: number; t0: number; t1: number; ms: number }

const profile = await makeTempDir('ploop-idb-syscalls-');
const trace = `${profile.dir}.strace`;
const session = await startBrowser({ profileDir: profile.dir, mounts: { '/b/': here('./'), '/idb-keyval/': here('../../node_modules/idb-keyval/dist/') } });
try {
  const page = await session.open('b/blank.html');
  const pids = execFileSync('pgrep', ['-f', profile.dir]).toString().trim().split('\n');
  const strace = spawn('strace', ['-f', '-y', '-ttt', '-e', 'trace=fsync,fdatasync,openat,write,pwrite64', '-o', trace, ...pids.flatMap((p) => ['-p', p])], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 1500)); // strace attaches to every thread
  const phases = (await page.evaluate(PAGE)) as Phase[];
  strace.kill('SIGINT');
  await new Promise((r) => strace.on('exit', r));
  const lines = readFileSync(trace, 'utf8').split('\n');
  const rows = phases.map((ph) => {
    const row = { phase: ph.name, chunks: ph.chunks, ms: Math.round(ph.ms), syncs: 0, blobFiles: 0, writtenMiB: 0 };
    for (const l of lines) {
      const m = /^\d+\s+([\d.]+)\s+(\w+)\((.*)/.exec(l);
      if (!m || Number(m[1]) < ph.t0 - 0.05 || Number(m[1]) > ph.t1 + 0.05) continue;
      // -y names each fd's file: only IndexedDB's files count (the profile writes others).
      if (!m[3].includes('/IndexedDB/')) continue;
      if (m[2] === 'fsync' || m[2] === 'fdatasync') row.syncs++;
      else if (m[2] === 'openat' && m[3].includes('O_CREAT') && m[3].includes('.indexeddb.blob')) row.blobFiles++;
      else if (m[2] === 'write' || m[2] === 'pwrite64') row.writtenMiB += Number(/= (\d+)$/.exec(l)?.[1] ?? 0) / 2 ** 20;
    }
    row.writtenMiB = Math.round(row.writtenMiB * 100) / 100;
    return row;
  });
  console.table(rows);
} finally {
  await session.close();
  await profile.cleanup();
  execFileSync('rm', ['-f', trace]);
}
