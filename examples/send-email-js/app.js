// The `emails` queue's handler in JavaScript, as examples/send-email is in Rust: each job is
// {"email": "..."} (with an optional "subject" and "name"); the handler checks the address
// and renders the message, as a dry run.
//
// Build (componentize-js 0.23.0, from the repository's root, after `npm ci` in guest-sdk/js):
//
//   node guest-sdk/js/build.mjs examples/send-email-js/app.js -o send_email_js.wasm
//   sque-host run --queue emails --handler send_email_js.wasm
//
// What the runtime costs: the component carries SpiderMonkey (about 12 MB; 9.1 MiB of linear
// memory at start); a fresh instance per job costs a few hundred microseconds of CPU where
// the Rust handler's costs microseconds. `sque-host run --reuse 1000` keeps an instance for
// up to 1,000 jobs in turn, when the handler keeps nothing of one job for the next. Reading
// MAIL_API_URL and posting to it need the environment and wasi:http in the handler world
// (sque:handler@0.2.0, not yet here): this handler is a dry run for now.

import { Fail, handler, info } from 'sque-guest';

function checkAddress(address) {
  const bad = (why) => {
    throw new Fail(`invalid email address ${JSON.stringify(address)}: ${why}`);
  };
  if (typeof address !== 'string') bad('not a string');
  if (address.length > 254) bad('longer than 254 characters');
  // Character by character: the runtime is built without Unicode property escapes (\p{…}).
  const control = (c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f;
  if ([...address].some((c) => /\s/.test(c) || control(c))) bad('contains whitespace');
  const at = address.lastIndexOf('@');
  if (at < 0) bad('no @');
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (!local || local.includes('@')) bad('the part before @ is empty or has another @');
  if (!domain.includes('.') || domain.startsWith('.') || domain.endsWith('.')) {
    bad('the domain needs a dot, and not at either end');
  }
}

function render(mail) {
  const name = mail.name || 'there';
  return {
    to: mail.email,
    subject: mail.subject || 'Hello from sque',
    text: `Hi ${name},\n\nthis message was sent by a sque job handler.\n`,
  };
}

export const handle = handler((job) => {
  const mail = job.json();
  if (mail === null || typeof mail !== 'object' || !('email' in mail)) {
    throw new Fail('expected {"email": "..."}');
  }
  checkAddress(mail.email);
  const message = render(mail);
  info(`dry run: would send ${JSON.stringify(message.subject)} to ${message.to}`);
  return { to: message.to, status: null };
});
