// Runs a routine of bench.mjs inside a dedicated module worker (where OPFS sync handles exist).
import { run } from './bench.mjs';

self.onmessage = async (e) => self.postMessage(await run(e.data.name, e.data.arg));
