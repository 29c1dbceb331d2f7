-- renew: extend the leases a worker holds and its heartbeat, in one call, by the queue's lease.
-- KEYS[1] meta  KEYS[2] leases  KEYS[3] workers  KEYS[4] requests
-- ARGV[1] the caller's protocol version  ARGV[2] worker id  ARGV[3] flags: 1 when the worker
-- reads jobs' waits, plus 2 when its requests must be stored again whatever its heartbeat
-- (a pop of its inbox failed on its way back: the deliveries it took answered requests that
-- are gone from `requests`, and nothing else would tell) ("0" to "3")  ARGV[4] number of
-- tokens n, then the n tokens, then the worker's pending request entries "W:S".
-- While a worker that reads jobs' waits renews, meta's `waits_until` stays 3 leases ahead:
-- until then, the scripts that hand jobs out work out each first attempt's wait (`serve`).
-- The worker's protocol version (ARGV[1]) is kept in "P:{Q}:protocols", for the dispatchers.
-- The tokens still held are kept in "P:{Q}:held:W", space-separated, each with when its
-- lease began ("TOKEN@MS", Redis's clock), for one lease.
-- Returns {reannounced, lease ms, {stale token, ...}, {cancelled token, ...}}: a stale token
-- that was cancelled (`cancel`) is in both lists. When the heartbeat had run out, a manager
-- may have dropped the worker's requests: they are put back at the tail (reannounced = 1), as
-- they are when the flags ask. (A request put back that was served all the same gets a second
-- delivery, which its worker gives back: nobody waits on it any more.)
-- The lease is the queue's now, so that a worker renews as often as the queue's lease needs.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL.
local s = open_call(KEYS[1], ARGV[1], 'lease')
local now = now_ms()
local reannounced, stale, held = 0, {}, {}
local ntokens = tonumber(ARGV[4])
-- When each lease began ("TOKEN@MS" in held:W), kept from renewal to renewal; at a token's
-- first renewal, its lease's end before this renewal less the queue's lease.
local held_by = key_base(KEYS[1]) .. 'held:' .. ARGV[2]
local began = {}
local before = redis.call('GET', held_by)
if before then
  for token, ms in string.gmatch(before, '([^ @]+)@(%d+)') do began[token] = ms end
end
for i = 5, 4 + ntokens do
  local until_before = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if until_before then
    redis.call('ZADD', KEYS[2], 'XX', now + s.lease, ARGV[i])
    held[#held + 1] = ARGV[i] .. '@' ..
      (began[ARGV[i]] or string.format('%d', tonumber(until_before) - s.lease))
  else
    stale[#stale + 1] = ARGV[i]
  end
end
local flags = tonumber(ARGV[3]) or 0
local until_ms = redis.call('ZSCORE', KEYS[3], ARGV[2])
if flags >= 2 or not until_ms or tonumber(until_ms) <= now then
  for i = 5 + ntokens, #ARGV do
    redis.call('LREM', KEYS[4], 0, ARGV[i])
    redis.call('RPUSH', KEYS[4], ARGV[i])
  end
  reannounced = 1
end
-- A worker's heartbeat lasts one lease, and so does the list of what it holds (for
-- inspectors: which worker holds which job).
redis.call('ZADD', KEYS[3], now + s.lease, ARGV[2])
-- The worker's protocol version, for the dispatchers: which form of delivery it reads.
redis.call('HSET', key_base(KEYS[1]) .. 'protocols', ARGV[2], ARGV[1])
if flags % 2 == 1 and (s.waits_until or 0) < now + 2 * s.lease then
  redis.call('HSET', KEYS[1], 'waits_until', string.format('%d', now + 3 * s.lease))
end
if #held > 0 then
  redis.call('SET', held_by, table.concat(held, ' '), 'PX', s.lease)
else
  redis.call('DEL', held_by)
end
local cancelled = {}
if #stale > 0 and s.uses and s.uses.cancel then
  local base = key_base(KEYS[1])
  for _, token in ipairs(stale) do
    if redis.call('ZSCORE', base .. 'cancelled', parse_token(token) or '') then
      cancelled[#cancelled + 1] = token
    end
  end
end
return {reannounced, s.lease, stale, cancelled}
