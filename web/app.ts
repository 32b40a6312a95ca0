// SPDX-License-Identifier: MIT
// The demo page (placeholder until the inspector lands).
import { PloopError } from '../src/browser.js';

document.querySelector('#app')?.setAttribute('data-ready', String(typeof PloopError === 'function'));
