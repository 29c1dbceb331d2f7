// The `emails` queue's handler in JavaScript, as examples/send-email is in Rust: each job is
// {"email": "..."} (with an optional "subject" and "name"); the handler checks the address,
// renders the message and posts it as JSON to the mail API named by MAIL_API_URL (a dry run
// without it). A bad address fails for good; an unreachable or failing API (5xx, 429) is
// retried.
//
// Build (componentize-js 0.23.0, from the repository's root, after `npm ci` in guest-sdk/js):
//
//   node guest-sdk/js/build.mjs examples/send-email-js/app.js -o send_email_js.wasm
//   sque-host run --queue emails --handler send_email_js.wasm \
//     --env MAIL_API_URL=http://127.0.0.1:8025/send --allow-http 127.0.0.1:8025
//
// What the runtime costs: the component carries SpiderMonkey (about 12 MB; 9.1 MiB of linear
// memory at start); a fresh instance per job costs a few hundred microseconds of CPU where
// the Rust handler's costs microseconds. `sque-host run --reuse 1000` keeps an instance for
// up to 1,000 jobs in turn, when the handler keeps nothing of one job for the next.

import { Fail, Retry, env, handler, info } from 'sque-guest';

function checkAddress(address) {
  const bad = (why) => {
    throw new Fail(`invalid email address ${JSON.stringify(address)}: ${why}`);
  };
  if (typeof address !== 'string') bad('not a string');
  if (address.length > 254) bad('longer than 254 characters');
  // Whitespace or a control character (C0, DEL, C1), as the Rust example checks, in one
  // regular expression: the runtime interprets JavaScript, and testing each character in
  // turn took almost half of a kept instance's time (bench/README.md).
  if (/[\s\x00-\x1f\x7f-\x9f]/.test(address)) bad('contains whitespace');
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

export const handle = handler(async (job) => {
  const mail = job.json();
  if (mail === null || typeof mail !== 'object' || !('email' in mail)) {
    throw new Fail('expected {"email": "..."}');
  }
  checkAddress(mail.email);
  const message = render(mail);
  const api = env('MAIL_API_URL');
  if (api === undefined) {
    info(`dry run (no MAIL_API_URL): would send ${JSON.stringify(message.subject)} to ${message.to}`);
    return { to: message.to, status: null };
  }
  let response;
  try {
    response = await fetch(api, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(message),
    });
  } catch (e) {
    // The runtime's fetch does not say why; the host's log does (a denial names the host).
    throw new Retry(`posting to the mail API failed: ${e.message}`);
  }
  const { status } = response;
  if (status >= 200 && status <= 299) {
    info(`sent to ${message.to} (HTTP ${status})`);
    return { to: message.to, status };
  }
  if (status >= 500 || status === 429) throw new Retry(`mail API answered HTTP ${status}`);
  throw new Fail(`mail API refused the message: HTTP ${status}`);
});
