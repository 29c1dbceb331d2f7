-- renew: extend the leases a worker holds and its heartbeat, in one call.
-- KEYS[1] leases  KEYS[2] workers  KEYS[3] requests
-- ARGV[1] worker id  ARGV[2] lease ms  ARGV[3] heartbeat ttl ms  ARGV[4] number of tokens,
-- then the tokens, then the worker's pending request entries.
-- Returns {reannounced, stale token, ...}. When the heartbeat had run out, a manager may have
-- dropped the worker's requests: they are put back at the tail (reannounced = 1).
local now = now_ms()
local out = {'0'}
local ntokens = tonumber(ARGV[4])
for i = 5, 4 + ntokens do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[i])
  else
    out[#out + 1] = ARGV[i]
  end
end
local until_ms = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not until_ms or tonumber(until_ms) <= now then
  for i = 5 + ntokens, #ARGV do
    redis.call('LREM', KEYS[3], 0, ARGV[i])
    redis.call('RPUSH', KEYS[3], ARGV[i])
  end
  out[1] = '1'
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return out
