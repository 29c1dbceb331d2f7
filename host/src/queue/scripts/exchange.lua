-- exchange: one worker's traffic of a moment, in one call: completions first, then new
-- requests ("I am free"). A slot that finishes a job and asks for the next one costs one
-- round trip, and the jobs that can be handed out at once come back in the reply.
--
-- Completions: each entry is refused (0) when its token is stale (or named twice), and then
-- changes nothing.
-- Requests: the worker's heartbeat is renewed. When no older request is stored, the new ones
-- are served at once from the waiting jobs (as a manager would serve them next) and their
-- deliveries returned; the lease is taken here, so a reply lost on the way is a lease that
-- runs out, as for a worker that died. The rest are stored, oldest first, and a manager is
-- woken if jobs wait.
-- KEYS[1] requests  KEYS[2] waiting  KEYS[3] workers  KEYS[4] jobs  KEYS[5] leases
-- KEYS[6] stats  KEYS[7] meta  KEYS[8] errors  KEYS[9] results  KEYS[10] results_at
-- ARGV[1] wake channel  ARGV[2] worker id  ARGV[3] heartbeat ttl ms  ARGV[4] lease ms
-- ARGV[5] max attempts if the queue has none set  ARGV[6] key prefix "p:{q}:"
-- ARGV[7] inbox ttl ms  ARGV[8] number of completions n
-- then n triples (token "id|attempt|max", "1" when a result follows or "0", result JSON or ""),
-- then the request entries "worker:seq".
-- Returns {one 1 or 0 per completion, in order; the deliveries served at once, in order}.
local now = now_ms()
local held = {}
local completions = tonumber(ARGV[8])
if completions > 0 then
  -- One ZMSCORE tells which leases still hold; one call each then ends them all.
  local tokens = {}
  for i = 1, completions do tokens[i] = ARGV[6 + 3 * i] end
  local scores = redis.call('ZMSCORE', KEYS[5], unpack(tokens))
  local ended, ids, seen = {}, {}, {}
  for i, token in ipairs(tokens) do
    if scores[i] and not seen[token] then
      seen[token] = true
      local id = string.match(token, '^([^|]+)|')
      ended[#ended + 1] = token
      ids[#ids + 1] = id
      if ARGV[7 + 3 * i] == '1' then
        redis.call('HSET', KEYS[9], id, ARGV[8 + 3 * i])
        redis.call('ZADD', KEYS[10], now, id)
      end
      held[i] = 1
    else
      held[i] = 0
    end
  end
  if #ended > 0 then
    redis.call('ZREM', KEYS[5], unpack(ended))
    redis.call('HDEL', KEYS[4], unpack(ids))
    redis.call('HDEL', KEYS[8], unpack(ids))
    redis.call('HINCRBY', KEYS[6], 'completed', #ended)
  end
end

local first = 9 + 3 * completions
local delivered = {}
if first > #ARGV then return {held, delivered} end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[2])
if redis.call('LLEN', KEYS[1]) == 0 then
  local requests = {}
  for i = first, #ARGV do requests[#requests + 1] = {ARGV[2], string.match(ARGV[i], ':(.+)$')} end
  local q = {jobs = KEYS[4], leases = KEYS[5], base = ARGV[6], deadline = now + tonumber(ARGV[4]),
             default_max = redis.call('HGET', KEYS[7], 'max_attempts') or ARGV[5],
             inbox_ttl = ARGV[7], out = delivered}
  local served = serve(q, KEYS[2], requests)
  if served > 0 then redis.call('HINCRBY', KEYS[6], 'dispatched', served) end
  first = first + served
end
for i = first, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
if first <= #ARGV and redis.call('LLEN', KEYS[2]) > 0 then redis.call('SPUBLISH', ARGV[1], 'free') end
return {held, delivered}
