'use strict';
// The protocol's script bundle: the Lua files and manifest.json in ../lua, a copy of
// queue/src/scripts made by scripts/copies (CI fails if the copy differs). Each script's text
// as Redis runs it is the prelude (lib.lua) followed by the script's own file; its SHA-1 is
// checked against the manifest here, once, so that a damaged copy is refused at load.

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const dir = path.join(__dirname, '..', 'lua');
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
const prelude = fs.readFileSync(path.join(dir, manifest.prelude), 'utf8');

/** @type {Record<string, {text: string, sha: string}>} */
const scripts = {};
for (const [name, entry] of Object.entries(manifest.scripts)) {
  const text = prelude + fs.readFileSync(path.join(dir, entry.file), 'utf8');
  const sha = crypto.createHash('sha1').update(text).digest('hex');
  if (sha !== entry.sha1) {
    throw new Error(`sque: the bundled script ${entry.file} does not match its manifest (${sha} != ${entry.sha1}); reinstall the package`);
  }
  scripts[name] = { text, sha };
}

module.exports = {
  /** The protocol version this package speaks, e.g. "1.0". */
  PROTOCOL: manifest.protocol,
  /** The settings a new queue gets, as meta stores them (ms, bytes, counts). */
  DEFAULT_SETTINGS: manifest.settings,
  scripts,
};
