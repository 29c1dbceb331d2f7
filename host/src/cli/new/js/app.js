// {name}: a sque job handler. Each job of the demo's `emails` queue is {"email": "..."};
// this one logs it and returns a result.
import { Fail, handler, info } from 'sque-guest';

export const handle = handler(async (job) => {
  const mail = job.json(); // not JSON: the dead list
  const email = typeof mail?.email === 'string' ? mail.email : '';
  if (!email.includes('@')) throw new Fail(`not an address: ${JSON.stringify(email)}`);
  info(`handling ${email} (attempt ${job.attempt})`);
  return { handled: email };
});
