'use strict';
// sque for Node.js: the original design's API over the sque protocol (docs/PROTOCOL.md).
//
//   const sque = require('sque');
//   const manager = new sque.manager('emails');          // creates the queue or joins it
//   await manager.push({ email: 'test1@mail.org' });      // -> the job's id
//   const client = new sque.client('emails');
//   client.iAmFree((error, data) => send(data.email));   // completed when it returns
//
// With no `redis` option it connects to SQUE_REDIS_URL, else redis://127.0.0.1:6379.

const { Manager } = require('./lib/manager');
const { Client, Job } = require('./lib/client');
const { SqueError } = require('./lib/errors');
const bundle = require('./lib/bundle');

module.exports = {
  manager: Manager,
  client: Client,
  Manager,
  Client,
  Job,
  SqueError,
  /** The protocol version this package speaks. */
  PROTOCOL: bundle.PROTOCOL,
  /** The settings a queue created by this package gets, as the queue's meta stores them. */
  DEFAULT_SETTINGS: Object.freeze({ ...bundle.DEFAULT_SETTINGS }),
};
