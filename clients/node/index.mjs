// The ES module face of sque: `import sque from 'sque'` or `import { Manager } from 'sque'`.
import sque from './index.js';

export default sque;
export const { manager, client, Manager, Client, Job, SqueError, PROTOCOL, DEFAULT_SETTINGS } = sque;
