// The package as an app gets it: `npm pack`, the tarball installed into a fresh app folder (its
// dependencies from npm's cache or the registry; the optional v86 peer left out), then
//  - Node imports ploop-wasm/node (files, a runner pool) and the installed bin runs;
//  - a page that imports ploop-wasm/browser, bundled by esbuild and built by Vite, opens an
//    image over HTTP and one in OPFS, and writes it with Web Worker runners in real Chromium.
// Vite finds the workers and ploop.wasm itself (the `new URL('./x', import.meta.url)` pattern);
// esbuild leaves those URLs as they are, so its app copies the files beside its bundle, as the
// README says. The app is installed and built once for the whole file.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from '../helpers/tmp.ts';
import { startBrowser, type BrowserSession } from '../helpers/browser.ts';
import { qemuCreate, qemuIo, ioWrite, qemuCheck, describeCheck } from '../helpers/qemu.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

function exec(program: string, args: string[], cwd: string, timeoutMs = 300_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(program, args, { cwd, timeout: timeoutMs, maxBuffer: 64 << 20, env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${program} ${args.join(' ')} (in ${cwd}) failed: ${error.message}\nstdout: ${stdout}\nstderr: ${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** The page: an image over HTTP, then one in OPFS written by two Web Worker runners. */
const PAGE_SOURCE = `
import { HttpRangeStore, OpfsStore, ParallelImage, PloopImage, createImage } from 'ploop-wasm/browser';

window.consumerRun = async ({ imageUrl, path }) => {
  const out = { warnings: [] };
  const http = await PloopImage.open(await HttpRangeStore.open(imageUrl));
  out.http = Array.from(await http.read(1 << 20, 8));
  await http.close();

  await OpfsStore.remove(path);
  const store = await OpfsStore.open(path, { create: true });
  await createImage(store, { size: 8 << 20, clusterSize: 1 << 20 });
  await store.close();
  const pool = await ParallelImage.open([{ kind: 'opfs', path, writable: true }], { writable: true, runners: 2, onWarning: (m) => out.warnings.push(m) });
  out.runnerCount = pool.runnerCount;
  await pool.write(2 << 20, new Uint8Array(65536).fill(0x5a));
  await pool.close();
  const again = await PloopImage.open(await OpfsStore.open(path), { onWarning: (m) => out.warnings.push(m) });
  out.opfs = Array.from(await again.read(2 << 20, 8));
  await again.close();
  out.isolated = crossOriginIsolated;
  return out;
};
`;

const INDEX_HTML = (script: string) => `<!doctype html>
<html><head><meta charset="utf-8"><title>consumer</title><link rel="icon" href="data:,"></head>
<body><script type="module" src="${script}"></script></body></html>
`;

/** The Node side: files through ploop-wasm/node, and a pool of runner threads. */
const NODE_SOURCE = `
import { NodeFileStore, PloopImage, ParallelImage, createImage } from 'ploop-wasm/node';
const path = process.argv[2];
const store = await NodeFileStore.open(path, { create: true });
await createImage(store, { size: 8 << 20, clusterSize: 1 << 20 });
const image = await PloopImage.open(store, { writable: true });
await image.write(1 << 20, new Uint8Array(4096).fill(0x42));
await image.close();
const pool = await ParallelImage.open([path], { runners: 2 });
const back = await pool.read(1 << 20, 4096);
const runnerCount = pool.runnerCount;
await pool.close();
console.log(JSON.stringify({ runnerCount, all42: back.every((b) => b === 0x42) }));
`;

let tmp: { dir: string; cleanup: () => Promise<void> };
let app: string;
let session: BrowserSession | null = null;
/** Warnings Vite printed while building the page. */
const viteWarnings: string[] = [];

before(async () => {
  for (const built of ['dist/web/ploop.js', 'dist/bin/ploop-wasm.js', 'dist/src/node.js']) {
    assert.ok(existsSync(join(ROOT, built)), `${built} is missing: run npm run build`);
  }
  tmp = await makeTempDir('ploop-consumer-');
  const packed = JSON.parse((await exec('npm', ['pack', '--json', '--pack-destination', tmp.dir], ROOT)).stdout) as Array<{ filename: string }>;
  const tarball = join(tmp.dir, packed[0].filename);
  app = join(tmp.dir, 'app');
  await mkdir(join(app, 'page'), { recursive: true });
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer-app', private: true, type: 'module' }, null, 2));
  await exec('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], app);
  await writeFile(join(app, 'page/main.js'), PAGE_SOURCE);
  await writeFile(join(app, 'node-check.mjs'), NODE_SOURCE);

  // The image served over HTTP, made by qemu-img: 0x33 from 1 MiB on.
  const out = join(app, 'out');
  await mkdir(out);
  await qemuCreate(join(out, 'disk.hds'), '4M', '1M');
  await qemuIo(join(out, 'disk.hds'), [ioWrite(0x33, 1 << 20, 65536)]);

  // esbuild: the bundle, and beside it the files its `new URL(…, import.meta.url)` name.
  const esbuild = await import('esbuild');
  const esbuildOut = join(out, 'esbuild');
  await esbuild.build({ entryPoints: [join(app, 'page/main.js')], absWorkingDir: app, bundle: true, format: 'esm', platform: 'browser', outdir: esbuildOut, logLevel: 'silent' });
  const requireFromApp = createRequire(join(app, 'package.json'));
  for (const file of ['runner.worker.js', 'opfs.worker.js', 'ploop.wasm']) {
    await copyFile(requireFromApp.resolve(`ploop-wasm/web/${file}`), join(esbuildOut, file));
  }
  await writeFile(join(esbuildOut, 'index.html'), INDEX_HTML('./main.js'));

  // Vite: nothing copied by hand.
  await writeFile(join(app, 'index.html'), INDEX_HTML('/page/main.js'));
  const vite = await import('vite');
  await vite.build({
    root: app, base: './', configFile: false, logLevel: 'warn',
    customLogger: { ...vite.createLogger('warn'), warn: (m: string) => viteWarnings.push(m), warnOnce: (m: string) => viteWarnings.push(m) },
    build: { outDir: join(out, 'vite'), emptyOutDir: true, chunkSizeWarningLimit: 4096 },
  });
  session = await startBrowser({ root: out });
});

after(async () => {
  await session?.close();
  await tmp?.cleanup();
});

test('the installed package: ploop-wasm/node opens files and starts runner threads, the bin runs, v86 stays out', async () => {
  const img = join(app, 'node.hds');
  const r = JSON.parse((await exec(process.execPath, ['node-check.mjs', img], app)).stdout);
  assert.deepEqual(r, { runnerCount: 2, all42: true });
  const bin = join(app, 'node_modules/.bin/ploop-wasm');
  const info = JSON.parse((await exec(bin, ['info', img, '--json'], app)).stdout);
  assert.equal(info.virtualSize, 8 << 20);
  const read = await exec(bin, ['read', img, '--offset', String(1 << 20), '--length', '4'], app);
  assert.equal(read.stdout, 'BBBB');
  await exec(bin, ['check', img], app);
  // --version: the installed package's own package.json (not the app's).
  const pkg = JSON.parse(await readFile(join(app, 'node_modules/ploop-wasm/package.json'), 'utf8')) as { version: string };
  assert.equal((await exec(bin, ['--version'], app)).stdout, `ploop-wasm ${pkg.version}\n`);
  const q = await qemuCheck(img);
  assert.ok(q.clean, describeCheck(q));
  // v86 is an optional peer: an app that does not boot VMs does not get it.
  assert.equal(existsSync(join(app, 'node_modules/v86')), false, 'v86 was installed');
  const names = await readdir(join(app, 'node_modules'));
  for (const dependency of ['comlink', 'fast-xml-parser', 'idb-keyval']) assert.ok(names.includes(dependency), `${dependency} was not installed`);
  for (const devOnly of ['assemblyscript', 'esbuild', 'playwright-core', 'vite', 'tsx']) assert.ok(!names.includes(devOnly), `${devOnly} was installed`);
  // What ships is the library: not the build-time sample generator, no sample in the main entry.
  assert.equal(existsSync(join(app, 'node_modules/ploop-wasm/dist/src/sample')), false, 'the sample generator was packed');
  const entry = await exec(process.execPath, ['--input-type=module', '-e', "const m = await import('ploop-wasm'); console.log(JSON.stringify(Object.keys(m).filter((k) => /sample/i.test(k))))"], app);
  assert.equal(entry.stdout.trim(), '[]', 'the main entry exports sample code');
});

for (const bundler of ['esbuild', 'vite']) {
  test(`a page bundled by ${bundler} imports ploop-wasm/browser: an image over HTTP, one in OPFS written by 2 Web Worker runners`, { timeout: 120_000 }, async () => {
    const page = await session!.open(`${bundler}/index.html`);
    try {
      await page.waitForFunction(() => typeof (window as unknown as { consumerRun?: unknown }).consumerRun === 'function');
      const r = await page.evaluate((arg) => (window as unknown as { consumerRun: (a: unknown) => Promise<unknown> }).consumerRun(arg), { imageUrl: '/disk.hds', path: `consumer/${bundler}.hds` });
      assert.deepEqual(r, { warnings: [], http: new Array(8).fill(0x33), runnerCount: 2, opfs: new Array(8).fill(0x5a), isolated: true });
    } finally {
      await page.close();
    }
    assert.deepEqual(session!.errors, [], 'no console errors');
    if (bundler === 'vite') {
      assert.deepEqual(viteWarnings, [], 'Vite built the page without a warning');
      // Vite found the workers and the .wasm by itself: the workers emitted into its build, the
      // .wasm too, or inlined (a file under build.assetsInlineLimit, 4 KiB, becomes a data: URL).
      const assets = await readdir(join(app, 'out/vite/assets'));
      for (const emitted of [/^runner\.worker-.*\.js$/, /^opfs\.worker-.*\.js$/]) {
        assert.ok(assets.some((a) => emitted.test(a)), `vite emitted no ${emitted}: ${assets.join(', ')}`);
      }
      const scripts = await Promise.all(assets.filter((a) => a.endsWith('.js')).map((a) => readFile(join(app, 'out/vite/assets', a), 'utf8')));
      assert.ok(assets.some((a) => /^ploop-.*\.wasm$/.test(a)) || scripts.some((js) => js.includes('data:application/wasm;base64,')), `vite took no ploop.wasm: ${assets.join(', ')}`);
      const html = await readFile(join(app, 'out/vite/index.html'), 'utf8');
      assert.match(html, /src="\.\/assets\//);
    }
  });
}
