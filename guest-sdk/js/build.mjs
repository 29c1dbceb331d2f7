#!/usr/bin/env node
// Builds a JavaScript handler into a sque component, in one command:
//
//   node guest-sdk/js/build.mjs app.js -o app.wasm
//
// componentize-js (pinned in this package's package.json) resolves only relative imports
// within the entry's directory, so the handler's directory is copied to a temporary one with
// this SDK beside it as `sque-guest.js`, and every `from 'sque-guest'` is pointed at it.

import { componentize } from '@bytecodealliance/componentize-js';
import { init, parse } from 'es-module-lexer';
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const sdk = dirname(fileURLToPath(import.meta.url));

function usage(message) {
  console.error(`error: ${message}\nusage: node build.mjs HANDLER.js -o OUT.wasm`);
  process.exit(2);
}

const args = process.argv.slice(2);
const at = args.findIndex((a) => a === '-o' || a === '--out');
if (at < 0 || !args[at + 1]) usage('name the component to write with -o');
const out = resolve(args[at + 1]);
const entry = args.filter((_, i) => i !== at && i !== at + 1)[0];
if (!entry) usage('name the handler module');

await init;
const work = await mkdtemp(join(tmpdir(), 'sque-js-'));
try {
  await cp(dirname(resolve(entry)), work, {
    recursive: true,
    filter: (src) => basename(src) !== 'node_modules',
  });
  await cp(join(sdk, 'index.js'), join(work, 'sque-guest.js'));
  await pointAtSdk(work, work);
  const { component } = await componentize({
    sourcePath: join(work, basename(entry)),
    witPath: join(sdk, 'wit'),
    // The world less wasi:http/outgoing-handler: the runtime's fetch brings its own, and the
    // bindings of the import would cost every fresh instance (wit/handler.wit says more).
    worldName: 'handler-without-http',
  });
  await writeFile(out, component);
  console.log(`${out}: ${(component.length / (1 << 20)).toFixed(1)} MiB`);
} finally {
  await rm(work, { recursive: true, force: true });
}

/** Rewrites `'sque-guest'` imports in the .js files under `dir` to the copy in `root`. */
async function pointAtSdk(dir, root) {
  for (const item of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, item.name);
    if (item.isDirectory()) {
      await pointAtSdk(path, root);
      continue;
    }
    if (!item.name.endsWith('.js') || path === join(root, 'sque-guest.js')) continue;
    const text = await readFile(path, 'utf8');
    const [imports] = parse(text);
    let rewritten = '';
    let last = 0;
    for (const { n, s, e } of imports) {
      if (n !== 'sque-guest') continue;
      const depth = dir.slice(root.length).split('/').filter(Boolean).length;
      rewritten += text.slice(last, s) + (depth ? '../'.repeat(depth) : './') + 'sque-guest.js';
      last = e;
    }
    if (last) await writeFile(path, rewritten + text.slice(last));
  }
}
