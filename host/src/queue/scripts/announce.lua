-- announce: a worker says "I am free" (one entry "worker:seq" per request) and renews its
-- heartbeat. When no older request waits, the requests are served at once from the waiting
-- jobs, in this same call (as a manager would serve them next); the rest are stored, oldest
-- first, and a manager is woken if jobs wait.
-- KEYS[1] requests  KEYS[2] waiting  KEYS[3] workers  KEYS[4] jobs  KEYS[5] leases  KEYS[6] stats
-- KEYS[7] meta
-- ARGV[1] wake channel  ARGV[2] worker id  ARGV[3] heartbeat ttl ms  ARGV[4] lease ms
-- ARGV[5] max attempts if the queue has none set  ARGV[6] key prefix "p:{q}:"  ARGV[7] inbox ttl ms,
-- then the request entries. Returns how many were served at once.
local now = now_ms()
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[2])
local first = 8
local served = 0
if redis.call('LLEN', KEYS[1]) == 0 then
  local requests = {}
  for i = 8, #ARGV do requests[#requests + 1] = {ARGV[2], string.match(ARGV[i], ':(.+)$')} end
  local q = {jobs = KEYS[4], leases = KEYS[5], base = ARGV[6], deadline = now + tonumber(ARGV[4]),
             default_max = redis.call('HGET', KEYS[7], 'max_attempts') or ARGV[5], inbox_ttl = ARGV[7]}
  served = serve(q, KEYS[2], requests)
  if served > 0 then redis.call('HINCRBY', KEYS[6], 'dispatched', served) end
  first = first + served
end
for i = first, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
if first <= #ARGV and redis.call('LLEN', KEYS[2]) > 0 then redis.call('SPUBLISH', ARGV[1], 'free') end
return served
