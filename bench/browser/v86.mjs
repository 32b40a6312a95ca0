// Browser side of bench/v86.ts (served under /b/ beside dist/web; plain JS, runs as written):
// boots the Linux test guest once in v86 and returns the seconds from `new V86` to the guest's
// first userspace line, with the disk given three ways — a raw ArrayBuffer (v86's own
// SyncBuffer), our adapter over a ploop image in memory (a Blob, a memory delta on top), and our
// adapter over a disk folder read with HTTP ranges with its delta in OPFS (the page's setup) —
// and, for the folder, the requests and bytes fetched until then.
import * as lib from '/ploop.js';

async function bytesOf(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.arrayBuffer();
}

/** Everything fetched before the clock starts: ROMs, and for 'raw' and 'ploop' the disk. */
async function prepare(variant, o) {
  if (variant === 'raw') return { hda: { buffer: await bytesOf(o.raw) }, close: async () => {}, fetched: () => null };
  if (variant === 'ploop') {
    const blob = new Blob([await bytesOf(o.hds)]);
    const disk = await lib.PersistentDisk.open({ base: new lib.BlobStore(blob, { name: 'root.hds' }), dir: new lib.MemoryDirectory('bench'), baseId: 'bench' });
    return { hda: disk.v86Disk(), close: () => disk.close(), fetched: () => null };
  }
  if (variant === 'folder') {
    const folder = `bench-v86/${Date.now()}-${Math.floor(Math.random() * 1e9)}`;
    const base = await lib.openBaseUrl(new URL(o.folder, location.href));
    const disk = await lib.openPersistentDisk(base, { store: 'opfs', folder });
    const hda = disk.v86Disk();
    return {
      hda,
      fetched: () => ({ ...base.fetched(), reads: hda.counters.reads }),
      close: async () => {
        await disk.close();
        await lib.OpfsDirectory.remove(folder);
      },
    };
  }
  throw new Error(`unknown variant ${variant}`);
}

export async function bootOnce(variant, o) {
  const [{ V86 }, bios, vga] = await Promise.all([import('/v86/libv86.mjs'), bytesOf('/bios/bios.bin'), bytesOf('/bios/vgabios-stdvga.bin')]);
  const disk = await prepare(variant, o);
  let emulator;
  try {
    const started = performance.now();
    // The options startV86 (src/adapters/v86/emulator.ts) uses, for every variant alike.
    emulator = new V86({
      wasm_path: '/v86/v86.wasm', bios: { buffer: bios }, vga_bios: { buffer: vga }, hda: disk.hda, boot_order: 0x132,
      memory_size: o.memoryBytes, vga_memory_size: 2 << 20, autostart: true, disable_keyboard: true, disable_mouse: true, disable_speaker: true,
    });
    let text = '';
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${variant}: no "${o.marker}" after ${o.timeoutMs} ms: ${text.slice(-400)}`)), o.timeoutMs);
      emulator.add_listener('serial0-output-byte', (b) => {
        text += String.fromCharCode(b);
        if (text.endsWith(o.marker)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    return { seconds: (performance.now() - started) / 1000, fetched: disk.fetched() };
  } finally {
    await emulator?.destroy();
    await disk.close();
  }
}
