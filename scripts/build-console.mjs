#!/usr/bin/env node
// Builds the web console (packages/console -> packages/console/dist) when dist is missing or older
// than any of its sources (console files or the protocol package it is typed from). Run by
// `npm start` and `npm test`; `--force` rebuilds anyway. A fresh build typechecks first (~3 s).
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newest } from './newest.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = join(root, 'packages/console');
const stamp = join(pkg, 'dist/index.html');

const sources = ['src', 'index.html', 'vite.config.ts', 'tsconfig.json', 'package.json'].map((p) => join(pkg, p));
sources.push(join(root, 'packages/protocol/src'));
const built = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
const changed = Math.max(...sources.map(newest));
if (!process.argv.includes('--force') && built > changed) {
  console.log('console: dist is up to date');
  process.exit(0);
}
const bin = (name) => join(root, 'node_modules/.bin', name);
const t0 = Date.now();
execFileSync(bin('tsc'), ['-p', join(pkg, 'tsconfig.json')], { stdio: 'inherit', cwd: pkg });
execFileSync(bin('vite'), ['build', '--logLevel', 'warn'], { stdio: 'inherit', cwd: pkg });
console.log(`console: built packages/console/dist in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
