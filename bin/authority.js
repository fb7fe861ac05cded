#!/usr/bin/env node
// Runs the compiled CLI when the package is installed, or the TypeScript
// sources through tsx in a development checkout.
import { existsSync } from 'node:fs';

const src = new URL('../src/cli/main.ts', import.meta.url);
const dist = new URL('../dist/cli/main.js', import.meta.url);
let mod;
if (existsSync(src)) {
  const { register } = await import('tsx/esm/api');
  register();
  mod = await import(src.href);
} else {
  mod = await import(dist.href);
}
process.exitCode = await mod.main(process.argv.slice(2));
