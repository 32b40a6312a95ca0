// Real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core) against dist/web
// served by our static server. A persistent profile is used because OPFS and IndexedDB in an
// incognito context are in-memory and 30-100x slower; the profile also lets a test reload (or
// relaunch) and find its OPFS/IndexedDB data again.

import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { startStaticServer, type StaticServer, type StaticServerOptions } from '../../src/server/static-server.js';
import { makeTempDir } from './tmp.js';

export const CHROMIUM = '/usr/bin/chromium';
export const WEB_ROOT = fileURLToPath(new URL('../../dist/web/', import.meta.url));
export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions',
];

export interface BrowserSession {
  context: BrowserContext;
  server: StaticServer;
  /** Console errors and uncaught page errors seen so far, across all pages. */
  errors: string[];
  /** Open a page at `path` (relative to the server root) and wait for its load event. */
  open(path?: string): Promise<Page>;
  /** Close the browser (keeping the profile) and start it again on the same profile. */
  relaunch(): Promise<void>;
  close(): Promise<void>;
}

export interface SessionOptions extends Partial<StaticServerOptions> {
  /** Reuse a profile directory (to survive a relaunch across sessions). */
  profileDir?: string;
}

export async function startBrowser(options: SessionOptions = {}): Promise<BrowserSession> {
  if (!existsSync(join(WEB_ROOT, 'ploop.js'))) throw new Error('dist/web is missing: run npm run build');
  const server = await startStaticServer({ root: WEB_ROOT, ...options });
  const profile = options.profileDir ? { dir: options.profileDir, cleanup: async () => {} } : await makeTempDir('ploop-chromium-');
  const errors: string[] = [];
  const launch = () =>
    chromium.launchPersistentContext(profile.dir, { executablePath: CHROMIUM, headless: true, args: ARGS });
  let context = await launch();
  const watch = (page: Page) => {
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
    });
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  };
  const session: BrowserSession = {
    get context() {
      return context;
    },
    server,
    errors,
    async open(path = 'index.html') {
      const page = await context.newPage();
      watch(page);
      await page.goto(new URL(path, server.url).href, { waitUntil: 'load' });
      return page;
    },
    async relaunch() {
      await context.close();
      context = await launch();
    },
    async close() {
      await context.close().catch(() => {});
      await server.close();
      await profile.cleanup();
    },
  };
  return session;
}

/** Save a screenshot under test-artifacts/ (kept by CI as an artifact). */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
