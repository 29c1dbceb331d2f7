'use strict';
// The one error type of the package. `code` says what went wrong, and the message what to do.

class SqueError extends Error {
  /**
   * @param {string} code one of: invalid_input, invalid_queue_name, too_large, no_such_queue,
   *   protocol, feature, unavailable, stale_lease, cancelled, closed, timeout, dead, redis
   * @param {string} message
   * @param {unknown} [cause]
   */
  constructor(code, message, cause) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'SqueError';
    this.code = code;
  }
}

/** Turns an error Redis or node-redis gave into a SqueError with the script's code. */
function fromRedis(err) {
  if (err instanceof SqueError) return err;
  const text = String((err && err.message) || err);
  const detail = text.replace(/^\S+\s/, '').replace(/ script: .*$/, '');
  if (text.startsWith('SQUE_PROTOCOL')) {
    const [found, ...queue] = detail.split(' ');
    return new SqueError('protocol', `queue ${JSON.stringify(queue.join(' '))} uses protocol ${found}, this sque speaks ${require('./bundle').PROTOCOL}: use a matching sque version`, err);
  }
  if (text.startsWith('SQUE_FEATURE')) {
    const [feature, ...queue] = detail.split(' ');
    return new SqueError('feature', `queue ${JSON.stringify(queue.join(' '))} uses the feature ${JSON.stringify(feature)}, which this sque does not know: upgrade it (every host of a queue should run the newest version first)`, err);
  }
  if (text.startsWith('SQUE_NOQUEUE')) {
    return new SqueError('no_such_queue', `queue ${JSON.stringify(detail)} does not exist in Redis (never created, or its keys were removed since): check the name and prefix; a new sque.manager creates it`, err);
  }
  if (text.startsWith('SQUE_TOOLARGE')) return new SqueError('too_large', `${detail}: keep large payloads elsewhere and push a reference`, err);
  if (text.startsWith('SQUE_INVALID')) return new SqueError('invalid_input', detail, err);
  if (/WRONGPASS|NOAUTH|NOPERM/.test(text)) {
    return new SqueError('redis', `Redis refused: ${text} (check the user, password and ACL in the Redis URL; the ACL is in docs/PROTOCOL.md)`, err);
  }
  if (/ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|Socket closed|The client is closed|The client is offline|Connection timeout/i.test(text)) {
    return new SqueError('unavailable', `cannot reach Redis: ${text} (is redis-server running, and is the URL right?)`, err);
  }
  return new SqueError('redis', `Redis error: ${text}`, err);
}

module.exports = { SqueError, fromRedis };
