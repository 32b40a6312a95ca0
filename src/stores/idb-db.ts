// SPDX-License-Identifier: MIT
// Opening the IndexedDB database of IdbStore/IdbDirectory: one database with any number of
// object stores (each added by a version upgrade when missing), and idb-keyval's UseStore with
// a durability hint per transaction.

import { createStore, type UseStore } from 'idb-keyval';
import { PloopError } from '../errors.js';

const stores = new Map<string, UseStore>();

/**
 * idb-keyval's createStore opens one database with one object store; this variant also passes a
 * durability hint to each transaction (idb-keyval's own store cannot). Cached per db/store/mode.
 */
export function idbStore(db: string, store: string, durability: 'strict' | 'relaxed' | 'default' = 'strict'): UseStore {
  const id = `${db}\u0000${store}\u0000${durability}`;
  let use = stores.get(id);
  if (use) return use;
  if (durability === 'default') {
    use = createStore(db, store);
  } else {
    let dbp: Promise<IDBDatabase> | undefined;
    const open = (): Promise<IDBDatabase> => {
      if (dbp) return dbp;
      // A connection closed by the browser or for an upgrade is opened again on next use.
      dbp = openWithStore(db, store, () => (dbp = undefined));
      dbp.catch(() => (dbp = undefined));
      return dbp;
    };
    use = (txMode, callback) => open().then((d) => callback(d.transaction(store, txMode, { durability }).objectStore(store)));
  }
  stores.set(id, use);
  return use;
}

/** Open an IndexedDB request as a promise; a blocked upgrade (another tab) gets a clear error. */
function request(db: string, version: number | undefined, store: string, gone: () => void): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const r = version === undefined ? indexedDB.open(db) : indexedDB.open(db, version);
    r.onupgradeneeded = () => { if (!r.result.objectStoreNames.contains(store)) r.result.createObjectStore(store); };
    r.onsuccess = () => {
      // Let a later upgrade (a new object store, from here or another tab) proceed.
      r.result.onversionchange = () => {
        r.result.close();
        gone();
      };
      r.result.onclose = gone;
      resolve(r.result);
    };
    r.onerror = () => reject(r.error);
    r.onblocked = () => reject(new PloopError('EIO', `idb: database ${db} needs a new object store ${store}, but another tab keeps an old connection open; close it and retry`));
  });
}

/** Open `db`, adding the object store `store` (a version upgrade) when the database lacks it. */
async function openWithStore(db: string, store: string, gone: () => void): Promise<IDBDatabase> {
  const d = await request(db, undefined, store, gone);
  if (d.objectStoreNames.contains(store)) return d;
  const version = d.version + 1;
  d.close();
  return request(db, version, store, gone);
}
